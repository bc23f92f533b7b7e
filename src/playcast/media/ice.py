"""How a host's WebRTC peers are reached: the ICE servers (STUN/TURN) its peer connections use, and the public
address announced in every answer for a host behind a 1:1 NAT (a cloud VM's public IP, a forwarded address).

Knows SDP candidate lines and aiortc's RTCConfiguration; nothing of HTTP, configuration files or the control plane."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCIceServer

from playcast.json_input import JsonInputError, parse_json

ICE_ENV = "PLAYCAST_ICE"  # how a host hands its IceSettings to its viewer worker processes (never argv: credentials)
_SCHEMES = ("stun", "stuns", "turn", "turns")
_CANDIDATE = re.compile(r"^a=candidate:(\S+) (\d+) (udp|tcp) (\d+) (\S+) (\d+) typ host(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class IceServer:
    urls: str
    username: str | None = None
    credential: str | None = None

    def to_aiortc(self) -> RTCIceServer:
        return RTCIceServer(urls=self.urls, username=self.username, credential=self.credential)


@dataclass(frozen=True)
class IceSettings:
    """`servers`: STUN/TURN for every peer connection of the host (empty: host candidates only).
    `public_ip`: an IP literal announced beside each host candidate, with the same port (1:1 NAT)."""

    servers: tuple[IceServer, ...] = ()
    public_ip: str | None = None

    def configuration(self) -> RTCConfiguration:
        return RTCConfiguration(iceServers=[s.to_aiortc() for s in self.servers])

    def announce(self, sdp: str) -> str:
        """`sdp` with, after each IPv4/IPv6 host candidate, a server-reflexive one on `public_ip` and the same port
        (what a browser outside the NAT can reach); unchanged without a public address."""
        if self.public_ip is None:
            return sdp
        family = ipaddress.ip_address(self.public_ip).version
        out: list[str] = []
        seen: set[tuple[str, str, str]] = set()
        newline = "\r\n" if "\r\n" in sdp else "\n"
        for line in sdp.split(newline):
            out.append(line)
            if line.startswith("m="):
                seen.clear()  # candidates are per media section
            m = _CANDIDATE.match(line)
            if m is None:
                continue
            foundation, component, transport, priority, address, port, rest = m.groups()
            try:
                if ipaddress.ip_address(address).version != family or address == self.public_ip:
                    continue
            except ValueError:  # an mDNS name: not ours to map
                continue
            key = (component, transport.lower(), port)
            if key in seen:
                continue
            seen.add(key)
            # srflx priority: type preference 100 (RFC 8445 §5.1.2.2), below every host candidate
            srflx = (100 << 24) | (int(priority) & 0xFFFFFF)
            out.append(f"a=candidate:{foundation}x {component} {transport} {srflx} {self.public_ip} {port} typ srflx "
                       f"raddr {address} rport {port}{rest}")
        return newline.join(out)

    def to_json(self) -> str:
        return json.dumps({"servers": [s.__dict__ for s in self.servers], "public_ip": self.public_ip})

    @classmethod
    def from_json(cls, text: str) -> IceSettings:
        raw = parse_json(text)
        return cls(tuple(IceServer(**s) for s in raw.get("servers", [])), raw.get("public_ip"))


def parse_ice_servers(text: str) -> tuple[IceServer, ...]:
    """ICE servers written as a browser's RTCConfiguration.iceServers (JSON: a list of {"urls": str | [str],
    "username", "credential"}). Raises ValueError naming what is wrong."""
    try:
        raw = parse_json(text)
    except JsonInputError as exc:
        raise ValueError(f"ICE servers are not JSON: {exc}") from None
    if not isinstance(raw, list):
        raise ValueError('ICE servers are a JSON list, e.g. [{"urls": "turn:turn.example.com:3478", '
                         '"username": "u", "credential": "p"}]')
    servers: list[IceServer] = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or "urls" not in entry:
            raise ValueError(f"ICE server {i}: an object with \"urls\" is expected")
        urls = entry["urls"] if isinstance(entry["urls"], list) else [entry["urls"]]
        username, credential = entry.get("username"), entry.get("credential")
        for url in urls:
            if not isinstance(url, str) or url.split(":", 1)[0].lower() not in _SCHEMES:
                raise ValueError(f"ICE server {i}: {url!r} is not a stun:, stuns:, turn: or turns: URL")
            if url.lower().startswith("turn") and (not username or not credential):
                raise ValueError(f"ICE server {i}: {url} needs a username and a credential")
            servers.append(IceServer(url, username, credential))
    return tuple(servers)


def resolve_public_address(value: str) -> str:
    """The IP literal for `--public-address` (an IP, or a name resolved once now). Raises ValueError."""
    value = value.strip().strip("[]")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(value, None, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise ValueError(f"public address {value!r} does not resolve: {exc}") from None
    addresses = sorted({str(info[4][0]) for info in infos}, key=lambda a: ipaddress.ip_address(a).version)
    if not addresses:
        raise ValueError(f"public address {value!r} does not resolve")
    return addresses[0]  # IPv4 first: what browsers behind most networks reach
