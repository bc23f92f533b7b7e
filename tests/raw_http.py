"""Raw-socket HTTP for tests of request bodies: a POST whose body is streamed (Content-Length or chunked) while the
answer is watched for, and the peak resident memory of a server process while that happens.

Loopback only; every socket and thread it starts is closed or stopped before it returns."""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

MB = 1 << 20
CHUNK = 64 * 1024


@dataclass
class RawAnswer:
    status: int | None  # None: no answer before the connection closed or the time ran out
    head: str  # the status line and headers, as text
    body: bytes  # what of the answer's body arrived
    sent_before_answer: int | None  # body bytes sent when the answer's head arrived
    sent: int  # body bytes sent in all (the server may close before `total`)


def _head(port: int, path: str, headers: dict[str, str], declared: int | None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items()),
             f"Content-Length: {declared}" if declared is not None else "Transfer-Encoding: chunked"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _complete(received: bytes) -> bool:
    """A whole answer: its head and as much body as its Content-Length says."""
    head, sep, body = received.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def post_streaming(port: int, path: str, headers: dict[str, str], *, declared: int | None, total: int,
                   wait_first_s: float = 0.0, timeout_s: float = 60.0, wait_after_s: float = 5.0) -> RawAnswer:
    """POST to 127.0.0.1:`port`: Content-Length `declared` (None: chunked), then up to `total` body bytes, while
    reading the answer's head. With `wait_first_s`, no body byte goes out until the answer came or that long
    passed. Sending stops at `total` or once the server stops reading (closed, reset); the answer is waited for
    `wait_after_s` more; all within `timeout_s`."""
    chunked = declared is None
    piece = (b"%x\r\n" % CHUNK) + b"x" * CHUNK + b"\r\n" if chunked else b"x" * CHUNK
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    try:
        sock.sendall(_head(port, path, headers, declared))
        sock.setblocking(False)
        start = time.monotonic()
        received = b""
        status: int | None = None
        sent = 0
        sent_before: int | None = None
        pending = b""
        read_open = write_open = True
        sending_ended: float | None = None
        while (now := time.monotonic()) - start < timeout_s:
            may_send = status is not None or now - start >= wait_first_s
            want_write = write_open and may_send and (pending or sent < total)
            if not want_write:
                if not read_open or _complete(received):
                    break  # answered or closed, and nothing left to send
                if may_send:
                    sending_ended = sending_ended or now
                    if now - sending_ended > wait_after_s:
                        break
            readable, writable, _ = select.select([sock] if read_open else [], [sock] if want_write else [], [],
                                                  0.05)
            if readable:
                try:
                    data = sock.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                if not data:
                    read_open = False
                received += data
                if status is None and b"\r\n\r\n" in received:
                    status = int(received.split(b" ", 2)[1])
                    sent_before = sent
            if writable:
                try:
                    if not pending:
                        pending = piece
                    n = sock.send(pending)
                    pending = pending[n:]
                    if not pending:
                        sent += CHUNK
                except (ConnectionResetError, BrokenPipeError):
                    write_open = False
        head, _, body = received.partition(b"\r\n\r\n")
        return RawAnswer(status, head.decode("latin-1"), body, sent_before, sent)
    finally:
        sock.close()


class PeakRss:
    """`with PeakRss(pid) as peak:` samples the process's VmRSS every few ms; `peak.growth_mb` is the highest
    sample's rise over the first."""

    def __init__(self, pid: int, interval_s: float = 0.002) -> None:
        self._status = Path(f"/proc/{pid}/status")
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.baseline_kb = self.peak_kb = 0

    def rss_kb(self) -> int:
        for line in self._status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS line")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.rss_kb())
            self._stop.wait(self._interval)

    @property
    def growth_mb(self) -> float:
        return (self.peak_kb - self.baseline_kb) / 1024

    def __enter__(self) -> PeakRss:
        self.baseline_kb = self.peak_kb = self.rss_kb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, self.rss_kb())
