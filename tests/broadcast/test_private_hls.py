"""A private broadcast's LL-HLS and recording on a real `playcast up`: nothing without the viewer token, and the
owner's tokenized URLs play in FFmpeg's own HLS client (every URL the playlists list carries the token)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.broadcast.test_whep import _start_session
from tests.harness import playcast_up, wait_until

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(shutil.which("ffprobe") is None, reason="Debian ffmpeg not installed")]

W, H = 1280, 720  # playcast up's default stream size


def _listed(playlist: str, base: str) -> list[str]:
    """Absolute URLs of every URI a playlist lists (URI lines and URI="..." attributes)."""
    uris = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    return [urljoin(base, u) for u in uris + re.findall(r'URI="([^"]*)"', playlist)]


def _untokenized(url: str) -> str:
    return url.split("?", 1)[0]


def _run(*argv: str) -> bytes:
    done = subprocess.run(argv, capture_output=True, timeout=90)
    assert done.returncode == 0, f"{argv[0]} exited {done.returncode}: {done.stderr.decode()[-2000:]}"
    return done.stdout


def _ok(http: httpx.Client, url: str) -> httpx.Response | None:
    r = http.get(url)
    return r if r.status_code == 200 else None


def test_private_broadcast_hls_and_recording_need_the_viewer_token() -> None:
    with playcast_up("--slots", "2") as pc:
        admin = {"Authorization": f"Bearer {pc.credentials['admin_token']}"}
        http = httpx.Client(timeout=30)
        group, sid = _start_session(pc)
        b = http.post(f"{pc.base_url}/v1/broadcasts", headers=admin,
                      json={"streamSessionId": sid, "private": True, "record": True}).json()
        bid, token = b["broadcastId"], b["viewerToken"]
        assert b["hlsUrl"] == f"{pc.base_url}/hls/{bid}/master.m3u8?token={token}"
        master = wait_until(lambda: _ok(http, b["hlsUrl"]), 30, "the private master playlist")

        # Tokenized: every URL listed carries the token, and each one answers.
        media_urls = _listed(master.text, b["hlsUrl"])
        assert media_urls and all(u.endswith(f"?token={token}") for u in media_urls), master.text
        media = http.get(media_urls[0])
        assert media.status_code == 200 and media.headers["cache-control"] == "no-cache"
        listed = _listed(media.text, media_urls[0])
        kinds = {urlsplit(u).path.rsplit("/", 1)[-1][:4] for u in listed}
        assert {"init", "part", "seg0"} <= kinds or {"init", "part"} <= kinds, listed
        assert all(u.endswith(f"?token={token}") for u in listed), media.text
        for url in listed:
            r = http.get(url)
            assert r.status_code == 200 and r.headers["content-type"] == "video/mp4", (url, r.status_code)
        segments = [u for u in listed if "/seg" in u]
        assert segments, media.text

        # Without the token: 401 everywhere (as /status and /whep say), 403 with a wrong one.
        every_kind = [b["hlsUrl"], media_urls[0], next(u for u in listed if "/init" in u),
                      next(u for u in listed if "/part" in u), segments[-1]]
        for url in every_kind:
            bare = _untokenized(url)
            r = http.get(bare)
            assert r.status_code == 401 and "private" in r.text, (bare, r.status_code)
            assert http.get(bare + "?token=wrong").status_code == 403
            assert http.get(bare, headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert http.get(f"{pc.base_url}/v1/broadcasts/{bid}/status").status_code == 401
        # With the token as a header: served as is, and kept out of shared caches.
        bearer = {"Authorization": f"Bearer {token}"}
        by_header = http.get(_untokenized(media_urls[0]), headers=bearer)
        assert by_header.status_code == 200 and "token" not in by_header.text
        assert by_header.headers["cache-control"] == "private, no-cache"

        # FFmpeg's HLS client plays the live stream from the tokenized master URL alone.
        probe = json.loads(_run("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height",
                                "-of", "json", b["hlsUrl"]))
        streams = {s["codec_type"]: s for s in probe["streams"]}
        assert streams["video"]["codec_name"] == "h264" and (streams["video"]["width"], streams["video"]["height"]) == (W, H)
        assert streams["audio"]["codec_name"] == "aac"
        frames = _run("ffmpeg", "-v", "error", "-nostdin", "-i", b["hlsUrl"], "-map", "0:v:0", "-frames:v", "30",
                      "-f", "rawvideo", "-pix_fmt", "gray", "-")
        assert len(frames) == 30 * W * H

        # The recording: tokenless 401, tokenized playlists carry the token, FFmpeg plays it all.
        vod_dir = pc.data_dir / "recordings" / "recordings" / bid
        wait_until(lambda: len(list(vod_dir.glob("media/hls/*/seg*.m4s"))) >= 3, 30, "recorded segments")
        assert http.delete(f"{pc.base_url}/v1/broadcasts/{bid}", headers=admin).status_code == 204
        doc = wait_until(lambda: (d := http.get(f"{pc.base_url}/v1/broadcasts/{bid}", headers=admin).json())
                         ["recording"]["status"] == "ENDED" and d, 30, "the recording to end")
        vod = doc["recording"]["vodUrl"]
        assert vod == f"{pc.base_url}/recordings/{bid}/media/hls/master.m3u8?token={token}"
        assert http.get(_untokenized(vod)).status_code == 401
        assert http.get(_untokenized(vod) + "?token=wrong").status_code == 403
        vod_media = _listed(http.get(vod).text, vod)
        assert vod_media and all(u.endswith(f"?token={token}") for u in vod_media)
        vod_listed = _listed(http.get(vod_media[0]).text, vod_media[0])
        assert len(vod_listed) >= 4 and all(u.endswith(f"?token={token}") for u in vod_listed)
        assert http.get(_untokenized(vod_listed[-1])).status_code == 401
        vod_by_header = http.get(_untokenized(vod_media[0]), headers=bearer)
        assert vod_by_header.status_code == 200 and "token" not in vod_by_header.text
        assert vod_by_header.headers["cache-control"] == "private, max-age=86400"
        assert http.get(vod_listed[-1]).headers["cache-control"] == "public, max-age=86400"  # ?token= URL
        fmt = json.loads(_run("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", vod))
        assert float(fmt["format"]["duration"]) > 2.0
        _run("ffmpeg", "-v", "error", "-nostdin", "-i", vod, "-map", "0:v:0", "-f", "null", "-")

        # A public broadcast of the same session: open, no token anywhere, cacheable as before.
        pub = http.post(f"{pc.base_url}/v1/broadcasts", headers=admin, json={"streamSessionId": sid}).json()
        assert pub["hlsUrl"] == f"{pc.base_url}/hls/{pub['broadcastId']}/master.m3u8"
        pub_master = wait_until(lambda: _ok(http, pub["hlsUrl"]), 30, "the public master playlist")
        assert pub_master.headers["cache-control"] == "public, max-age=2" and "?" not in pub_master.text
        pub_media_url = _listed(pub_master.text, pub["hlsUrl"])[0]
        pub_media = http.get(pub_media_url)
        assert pub_media.status_code == 200 and pub_media.headers["cache-control"] == "no-cache"
        assert "?" not in pub_media.text
        init = http.get(next(u for u in _listed(pub_media.text, pub_media_url) if "/init" in u))
        assert init.headers["cache-control"] == "public, max-age=31536000, immutable"
        pc.boto3().terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)
