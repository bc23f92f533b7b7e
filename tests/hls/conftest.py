"""HLS tests import hls_support (a packager fed by a real x264 encoder, synthetic pictures, an HTTP origin)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # hls_support
# the `moto` fixture (a real moto_server) is suite-wide: tests/conftest.py, tests/s3_support.py
