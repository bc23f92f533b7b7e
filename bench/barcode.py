"""The timestamp barcode of bench/vs_selkies.py: drawn by bench/barcode_game.py (pygame), read back in the browser
(DECODE_JS) from every presented video frame; the two halves must agree, and nothing else here.

Layout: three rows of 32 cells at the top-left of the frame, each cell W//32 wide and 3/5 of that high (40x24 px
at 1280 wide, 60x36 at 1920). Row 0: the 32 bits of the value, most significant first, white = 1. Row 1: row 0
inverted. Row 2: cells 0-7 a CRC-8 (poly 0x07) of the value's 4 bytes (big-endian), 8-15 the CRC inverted, 16-31
white/black alternating (a guard). A cell is read as the mean luminance of its middle; a bit counts only when the
cell and its inverse differ by a clear margin, and the value only when the CRC and the guard check out, so a frame
that H.264 smeared or a reader that looks at the wrong place gives no value instead of a wrong one."""

from __future__ import annotations

COLS = 32
ROWS = 3
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


def cell_size(width: int) -> tuple[int, int]:
    """(cell width, cell height) for a frame `width` pixels wide (the decoder derives the same from videoWidth)."""
    cw = width // COLS
    return cw, cw * 3 // 5


def crc8(value: int) -> int:
    crc = 0
    for byte in (int(value) & 0xFFFFFFFF).to_bytes(4, "big"):
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def cells(value: int) -> list[list[bool]]:
    """The three rows of 32 cells for `value` (True = white)."""
    value &= 0xFFFFFFFF
    bits = [bool(value >> (31 - i) & 1) for i in range(COLS)]
    crc = crc8(value)
    crc_bits = [bool(crc >> (7 - i) & 1) for i in range(8)]
    guard = [i % 2 == 0 for i in range(16)]
    return [bits, [not b for b in bits], crc_bits + [not b for b in crc_bits] + guard]


def draw(surface, value: int) -> None:  # type: ignore[no-untyped-def]
    """Paint the barcode for `value` onto a pygame Surface at (0, 0)."""
    cw, ch = cell_size(surface.get_width())
    for r, row in enumerate(cells(value)):
        for c, white in enumerate(row):
            surface.fill(WHITE if white else BLACK, (c * cw, r * ch, cw, ch))


# window.__barcode.decode(source, width) -> the value (>= 0) or a reason it was refused (< 0):
#   -1 a bit's cell and its inverse too alike, -2 CRC mismatch, -3 guard cells wrong, -4 no picture.
# `source`: anything drawImage takes (a <video>, an <img>); `width`: its intrinsic width (videoWidth).
DECODE_JS = """(() => {
  if (window.__barcode) return;
  const COLS = 32, ROWS = 3, SUB = 4, MARGIN = 60;
  const canvas = document.createElement('canvas'); canvas.width = COLS * SUB; canvas.height = ROWS * SUB;
  const g = canvas.getContext('2d', {willReadFrequently: true});
  g.imageSmoothingEnabled = true; g.imageSmoothingQuality = 'medium';
  const crc8 = (v) => {
    let crc = 0;
    for (let k = 3; k >= 0; k--) {
      crc ^= (v >>> (8 * k)) & 0xff;
      for (let i = 0; i < 8; i++) crc = (crc & 0x80) ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
    }
    return crc;
  };
  const decode = (src, width) => {
    const cw = Math.floor(width / COLS), ch = Math.floor(cw * 3 / 5);
    if (!(cw > 0)) return -4;
    g.drawImage(src, 0, 0, cw * COLS, ch * ROWS, 0, 0, COLS * SUB, ROWS * SUB);
    const d = g.getImageData(0, 0, COLS * SUB, ROWS * SUB).data;
    const lum = (r, c) => {   // mean of the middle 2x2 of the cell's 4x4 block
      let s = 0;
      for (let y = r * SUB + 1; y < r * SUB + 3; y++)
        for (let x = c * SUB + 1; x < c * SUB + 3; x++) { const i = (y * COLS * SUB + x) * 4; s += d[i] + d[i + 1] + d[i + 2]; }
      return s / 12;
    };
    let v = 0;
    for (let c = 0; c < COLS; c++) {
      const a = lum(0, c), b = lum(1, c);
      if (Math.abs(a - b) < MARGIN) return -1;
      v = (v * 2) + (a > b ? 1 : 0);
    }
    let crc = 0;
    for (let c = 0; c < 8; c++) {
      const a = lum(2, c), b = lum(2, c + 8);
      if (Math.abs(a - b) < MARGIN) return -1;
      crc = (crc << 1) | (a > b ? 1 : 0);
    }
    for (let c = 16; c < COLS; c += 2) if (lum(2, c) - lum(2, c + 1) < MARGIN) return -3;
    if (crc !== crc8(v)) return -2;
    return v;
  };
  window.__barcode = {decode};
})()"""

# Every RTCPeerConnection the page makes, kept in window.__pcs (for getStats on a page whose code is not ours).
PC_HOOK_JS = """(() => {
  if (window.__pcs) return;
  window.__pcs = [];
  const Orig = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Orig {
    constructor(...a) { super(...a); window.__pcs.push(this); }
  };
})()"""

# window.__rec: for every frame the <video> presents, its expectedDisplayTime (page clock, ms), presentedFrames and
# the decoded barcode (or the refusal code); clockFix maps the page clock to the wall clock (ms since the epoch).
RECORD_JS = """(video) => {
  const rec = window.__rec = {t: [], pf: [], v: [], timeOrigin: performance.timeOrigin,
                              clockFix: Date.now() - (performance.timeOrigin + performance.now())};
  const onFrame = (now, meta) => {
    rec.t.push(meta.expectedDisplayTime); rec.pf.push(meta.presentedFrames);
    rec.v.push(window.__barcode.decode(video, video.videoWidth));
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}"""

STATS_JS = """async () => { let o = {decoded: 0, dropped: 0, bytes: 0, nacks: 0, plis: 0, lost: 0, freezes: 0, freeze_s: 0,
    w: 0, h: 0, codec: ''};
  for (const pc of (window.__pcs || [])) {
    if (pc.connectionState === 'closed') continue;
    const r = await pc.getStats();
    const codecs = {};
    r.forEach(s => { if (s.type === 'codec') codecs[s.id] = s.mimeType; });
    r.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') {
      o.decoded += s.framesDecoded || 0; o.dropped += s.framesDropped || 0; o.bytes += s.bytesReceived || 0;
      o.nacks += s.nackCount || 0; o.plis += s.pliCount || 0; o.lost += s.packetsLost || 0;
      o.freezes += s.freezeCount || 0; o.freeze_s += s.totalFreezesDuration || 0; o.w = s.frameWidth || o.w; o.h = s.frameHeight || o.h;
      o.codec = codecs[s.codecId] || o.codec; } });
  }
  o.now = performance.now(); return o; }"""
