"""LL-HLS for broadcasts: fMP4 (CMAF) packaging of the encoded session stream, playlists, the live registry.

Import the public pieces from here; the media pipeline feeds the packager, api/hls.py serves what it holds."""

from playcast.media.hls.packager import HlsPackager
from playcast.media.hls.playlist import with_query
from playcast.media.hls.registry import HlsRegistry
from playcast.media.hls.segmenter import Part, Segment, Segmenter, SegmenterConfig
from playcast.media.hls.transcode import LADDER, RenditionSpec, ladder_below

__all__ = [
    "LADDER", "HlsPackager", "HlsRegistry", "Part", "RenditionSpec", "Segment", "Segmenter", "SegmenterConfig",
    "ladder_below", "with_query",
]
