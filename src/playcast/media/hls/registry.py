"""The LL-HLS packagers of the broadcasts live in this process, by broadcast id: what the origin may serve.

The host adds a packager when a broadcast's LL-HLS starts and removes it at the end; no HTTP, no access rules."""

from __future__ import annotations

from playcast.media.hls.packager import HlsPackager


class HlsRegistry:
    """Live broadcasts by id; the broadcast service adds a packager when HLS starts and removes it at the end."""

    def __init__(self) -> None:
        self._packagers: dict[str, HlsPackager] = {}

    def add(self, broadcast_id: str, packager: HlsPackager) -> None:
        if not broadcast_id or "/" in broadcast_id:
            raise ValueError(f"bad broadcast id {broadcast_id!r}")
        self._packagers[broadcast_id] = packager

    def remove(self, broadcast_id: str) -> HlsPackager | None:
        return self._packagers.pop(broadcast_id, None)

    def get(self, broadcast_id: str) -> HlsPackager | None:
        return self._packagers.get(broadcast_id)

    def __contains__(self, broadcast_id: str) -> bool:
        return broadcast_id in self._packagers

    def __len__(self) -> int:
        return len(self._packagers)
