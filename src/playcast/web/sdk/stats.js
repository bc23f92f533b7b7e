// Stream quality figures (fps, bitrate, RTT, loss, jitter buffer delay, decode time, resolution) from getStats deltas.
// Pure computation over RTCStatsReport-like maps; it never calls getStats itself.

function find(report, pred) {
  let found = null;
  report.forEach((s) => {
    if (!found && pred(s)) found = s;
  });
  return found;
}

function inboundVideo(report) {
  return find(report, (s) => s.type === "inbound-rtp" && (s.kind ?? s.mediaType) === "video");
}

function selectedPair(report) {
  const transport = find(report, (s) => s.type === "transport" && s.selectedCandidatePairId);
  if (transport) return report.get(transport.selectedCandidatePairId) ?? null;
  return find(report, (s) => s.type === "candidate-pair" && (s.selected || s.nominated) && s.state === "succeeded");
}

const delta = (cur, prev, key) => (cur?.[key] ?? 0) - (prev?.[key] ?? 0);
const round = (v, digits = 1) => (Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : null);

/**
 * Figures for the interval between two video stats reports (prev may be null for the first sample).
 * Returns {fps, bitrateKbps, rttMs, packetLossPercent, jitterBufferDelayMs, decodeTimeMs, width, height,
 *          framesDropped, freezeCount, codec, intervalMs}; unknown values are null.
 */
export function computeVideoStats(current, previous = null) {
  const cur = inboundVideo(current);
  const prev = previous ? inboundVideo(previous) : null;
  const out = {
    fps: null, bitrateKbps: null, rttMs: null, packetLossPercent: null, jitterBufferDelayMs: null,
    decodeTimeMs: null, width: cur?.frameWidth ?? null, height: cur?.frameHeight ?? null,
    framesDropped: cur?.framesDropped ?? null, freezeCount: cur?.freezeCount ?? null, codec: null, intervalMs: null,
  };
  if (cur?.codecId) {
    const codec = current.get(cur.codecId);
    if (codec) out.codec = codec.mimeType?.replace(/^video\//, "") ?? null;
  }
  const pair = selectedPair(current);
  if (pair && Number.isFinite(pair.currentRoundTripTime)) out.rttMs = round(pair.currentRoundTripTime * 1000);
  if (!cur) return out;
  if (!prev || prev.id !== cur.id || cur.timestamp <= prev.timestamp) {
    out.fps = cur.framesPerSecond ?? null;
    return out;
  }
  const seconds = (cur.timestamp - prev.timestamp) / 1000;
  out.intervalMs = round(seconds * 1000, 0);
  out.fps = round(delta(cur, prev, "framesDecoded") / seconds);
  out.bitrateKbps = round((delta(cur, prev, "bytesReceived") * 8) / 1000 / seconds, 0);
  const lost = delta(cur, prev, "packetsLost");
  const received = delta(cur, prev, "packetsReceived");
  out.packetLossPercent = lost + received > 0 ? round((100 * Math.max(0, lost)) / (lost + received), 2) : 0;
  const emitted = delta(cur, prev, "jitterBufferEmittedCount");
  if (emitted > 0) out.jitterBufferDelayMs = round((1000 * delta(cur, prev, "jitterBufferDelay")) / emitted);
  const decoded = delta(cur, prev, "framesDecoded");
  if (decoded > 0) out.decodeTimeMs = round((1000 * delta(cur, prev, "totalDecodeTime")) / decoded, 2);
  return out;
}

/** Keeps the previous report and yields figures for each new one. */
export class StatsTracker {
  constructor() {
    this._previous = null;
  }

  update(report) {
    const figures = computeVideoStats(report, this._previous);
    this._previous = report;
    return figures;
  }

  reset() {
    this._previous = null;
  }
}
