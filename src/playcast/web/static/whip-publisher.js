// WHIP publisher (RFC 9725) for the browser: sends a camera/microphone MediaStream to a WHIP endpoint.
// Usage: const p = new WhipPublisher(url, {token, onState}); await p.start(stream?); ... await p.stop();
// States: "connecting" | "live" | "retrying" (endpoint busy/unreachable; backoff) | "stopped" | "error" (given up).
// Non-trickle: the offer carries every candidate. H.264 is preferred (what IVS and playcast's stage take best).

import { iceGathered } from "/static/ice.js";

const ICE_GATHERING_TIMEOUT_MS = 2000;
const BACKOFF_BASE_MS = 1000;
const BACKOFF_CAP_MS = 30000;

export class WhipPublisher {
  constructor(url, { token = null, onState = () => {} } = {}) {
    this.url = url;
    this.token = token;
    this.onState = onState;
    this.pc = null;
    this.stream = null;
    this.ownStream = false;
    this.location = null;
    this.stopped = true;
    this.failures = 0;
    this.timer = 0;
  }

  _headers(extra = {}) {
    const h = { ...extra };
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    return h;
  }

  /** Publish `stream`, or the default camera + microphone when none is given. */
  async start(stream = null) {
    this.stopped = false;
    if (!this.stream) {
      this.ownStream = !stream;
      this.stream = stream ?? await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: true });
    }
    await this._connect();
  }

  async _connect() {
    this.onState("connecting");
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    this.pc = pc;
    for (const track of this.stream.getTracks()) {
      const tx = pc.addTransceiver(track, { direction: "sendonly", streams: [this.stream] });
      if (track.kind === "video") {
        const codecs = RTCRtpSender.getCapabilities?.("video")?.codecs ?? [];
        const h264 = codecs.filter((c) => /h264/i.test(c.mimeType));
        if (h264.length && tx.setCodecPreferences) tx.setCodecPreferences([...h264, ...codecs.filter((c) => !/h264/i.test(c.mimeType))]);
      }
    }
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      if (pc.connectionState === "connected") {
        this.failures = 0;
        this.onState("live");
      }
      if (pc.connectionState === "failed") this._retry("connection failed");
    };
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, ICE_GATHERING_TIMEOUT_MS);
    let res;
    try {
      res = await fetch(this.url, {
        method: "POST",
        headers: this._headers({ "Content-Type": "application/sdp" }),
        body: pc.localDescription.sdp,
      });
    } catch (err) {
      this._retry(String(err));
      return;
    }
    if (res.status === 201) {
      this.location = new URL(res.headers.get("Location"), this.url).toString();
      await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
      return;
    }
    const text = (await res.text()).trim();
    if (res.status >= 500 || res.status === 429 || res.status === 408) {
      this._retry(`${res.status} ${text}`, Number(res.headers.get("Retry-After")) * 1000 || 0);
      return;
    }
    this._close();
    this.onState("error", `${res.status} ${text}`);
  }

  _retry(why, afterMs = 0) {
    this._close();
    if (this.stopped) return;
    this.failures += 1;
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (this.failures - 1));
    const delay = afterMs || ceiling / 2 + Math.random() * ceiling / 2;
    this.onState("retrying", why);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this._connect().catch((e) => this._retry(String(e))), delay);
  }

  _close() {
    const pc = this.pc;
    this.pc = null;
    if (pc) pc.close();
    if (this.location) {
      fetch(this.location, { method: "DELETE", headers: this._headers() }).catch(() => {});
      this.location = null;
    }
  }

  async stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this._close();
    if (this.ownStream && this.stream) for (const t of this.stream.getTracks()) t.stop();
    this.stream = null;
    this.onState("stopped");
  }

  async getStats() {
    return this.pc ? this.pc.getStats() : new Map();
  }
}
