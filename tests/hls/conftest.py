"""Fixtures for HLS tests: a packager fed by a real x264 encoder (synthetic pictures) and an HTTP origin."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # hls_support
