"""GET /metrics of a real `playcast up`: host slots, sessions by status (as the GameLift API lists them), a
session's encode and fan-out, an aiortc WHEP viewer joining and leaving, LL-HLS requests, process figures."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.harness import playcast_up
from tests.observability.scrape import Scrape, ascrape, scrape_when
from tests.whip.support import WhepViewer, wait_until

pytestmark = pytest.mark.netns

TIMEOUT = 60.0  # generous: browser tests may share these 2 cores


def _api_counts(gls: Any, group: str) -> Counter[str]:
    items: list[dict[str, Any]] = []
    token = None
    while True:
        page = gls.list_stream_sessions(Identifier=group, **({"NextToken": token} if token else {}))
        items.extend(page["Items"])
        token = page.get("NextToken")
        if not token:
            return Counter(item["Status"] for item in items)


def _metric_counts(m: Scrape) -> Counter[str]:
    return Counter({status: int(v) for status, v in m.labelled("playcast_sessions", "status").items() if v})


async def test_up_metrics_follow_a_session_a_viewer_and_hls() -> None:
    with playcast_up("--slots", "2") as pc:
        gls = pc.boto3()
        async with httpx.AsyncClient(base_url=pc.base_url, timeout=30) as http:
            admin = {"Authorization": f"Bearer {pc.credentials['admin_token']}"}

            async def until(cond: Callable[[Scrape], bool], what: str) -> Scrape:
                return await wait_until(lambda: scrape_when(http, cond), TIMEOUT, what, interval=0.25)

            # Slots: two, one kept warm for the demo game; process figures from the per-app registry.
            m = await until(lambda m: m.value("playcast_host_slots_warm", location="local") == 1, "warm slot")
            assert m.value("playcast_host_slots", location="local") == 2
            assert m.value("playcast_host_slots_busy", location="local") == 0
            assert m.value("process_resident_memory_bytes") > 10e6 and m.value("process_open_fds") > 3
            assert m.value("process_cpu_seconds_total") > 0
            assert m.types["playcast_sessions"] == "gauge" and m.types["playcast_video_packets"] == "counter"

            # A session placed on the warm slot: ACTIVE in the API and in the metrics.
            group = (await asyncio.to_thread(gls.list_stream_groups))["Items"][0]["Id"]
            info = await asyncio.to_thread(gls.get_stream_group, Identifier=group)
            app = info["DefaultApplication"]["Id"]
            started = await asyncio.to_thread(
                gls.start_stream_session, Identifier=group, ApplicationIdentifier=app, Protocol="WebRTC",
                SignalRequest="NO_CLIENT_CONNECTION")
            sid = started["Arn"].split("/")[-1]
            await asyncio.to_thread(gls.get_waiter("stream_session_active").wait, Identifier=group,
                                    StreamSessionIdentifier=sid, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
            m = await ascrape(http)
            api = await asyncio.to_thread(_api_counts, gls, group)
            assert _metric_counts(m) == api == Counter({"ACTIVE": 1})
            assert m.value("playcast_host_slots_busy", location="local") == 1
            assert m.value("playcast_session_start_seconds_count", warm="true") == 1
            assert m.get("playcast_video_encoder_info", session=sid, encoder="libx264") == 1 \
                or m.get("playcast_video_encoder_info", session=sid, encoder="h264_nvenc") == 1
            assert m.value("playcast_video_sinks", session=sid) == 0  # nobody watches yet
            assert m.value("playcast_broadcasts_live") == 0

            # Go live (WHEP + LL-HLS): the packager is a sink of the one encode; packets flow.
            r = await http.post("/v1/broadcasts", headers=admin, json={"streamSessionId": sid})
            assert r.status_code == 201, r.text
            b = r.json()
            bid = b["broadcastId"]
            m = await ascrape(http)
            assert m.value("playcast_broadcasts_live") == 1
            assert m.value("playcast_whep_viewers", broadcast=bid) == 0
            assert m.value("playcast_video_sinks", session=sid) == 1
            first = await until(lambda m: m.value("playcast_video_packets_total", session=sid) > 0, "packets")
            packets = first.value("playcast_video_packets_total", session=sid)
            later = await until(lambda m: m.value("playcast_video_packets_total", session=sid) > packets,
                                "more packets")
            assert later.value("playcast_video_keyframes_total", session=sid) >= 1

            # LL-HLS requests are counted by kind.
            before = later.value("playcast_hls_requests_total", kind="master")
            assert (await http.get(b["hlsUrl"])).status_code == 200
            master = await http.get(b["hlsUrl"])
            playlist = next(line for line in master.text.splitlines() if line.endswith(".m3u8"))
            assert (await http.get(str(httpx.URL(b["hlsUrl"]).join(playlist)))).status_code == 200
            m = await ascrape(http)
            assert m.value("playcast_hls_requests_total", kind="master") == before + 2
            assert m.value("playcast_hls_requests_total", kind="playlist") >= 1

            # A WHEP viewer: the gauge is 1 while it watches, 0 once it has left.
            requests_before = m.value("playcast_video_keyframe_requests_total", session=sid)
            viewer = WhepViewer(b["whepUrl"])
            try:
                assert (await viewer.start(http)).status_code == 201
                await wait_until(lambda: len(viewer.frames) >= 10, TIMEOUT, "frames decoded by the viewer")
                m = await ascrape(http)
                assert m.value("playcast_whep_viewers", broadcast=bid) == 1
                assert m.value("playcast_video_sinks", session=sid) == 2
                assert m.value("playcast_video_keyframe_requests_total", session=sid) > requests_before
                assert viewer.location is not None
                assert (await http.delete(viewer.location)).status_code in (200, 204)
            finally:
                await viewer.close()
            m = await until(lambda m: m.value("playcast_whep_viewers", broadcast=bid) == 0, "no viewer left")
            assert m.value("playcast_video_sinks", session=sid) == 1

            # The session ends: its broadcast ends, its series go, the status counts still match the API.
            await asyncio.to_thread(gls.terminate_stream_session, Identifier=group,
                                    StreamSessionIdentifier=sid)
            m = await until(lambda m: m.value("playcast_sessions", status="TERMINATED") == 1, "TERMINATED")
            api = await asyncio.to_thread(_api_counts, gls, group)
            assert _metric_counts(m) == api and api["TERMINATED"] == 1
            assert m.get("playcast_video_packets_total", session=sid) is None
            m = await until(lambda m: m.value("playcast_broadcasts_live") == 0, "the broadcast ended")
            assert m.get("playcast_whep_viewers", broadcast=bid) is None

