"""LL-HLS for broadcasts: fMP4 (CMAF) packaging of the encoded session stream, playlists, and the HTTP origin.

Import the public pieces from here; the media pipeline feeds the packager, the server mounts the origin."""

from playcast.media.hls.origin import HlsOrigin, HlsRegistry, hls_routes, hlsjs_path, vendor_routes
from playcast.media.hls.packager import HlsPackager
from playcast.media.hls.segmenter import Part, Segment, Segmenter, SegmenterConfig
from playcast.media.hls.transcode import LADDER, RenditionSpec, ladder_below

__all__ = [
    "LADDER", "HlsOrigin", "HlsPackager", "HlsRegistry", "Part", "RenditionSpec", "Segment", "Segmenter",
    "SegmenterConfig", "hls_routes", "hlsjs_path", "ladder_below", "vendor_routes",
]
