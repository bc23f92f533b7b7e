// WHIP publisher (RFC 9725) for the browser: sends a camera/microphone MediaStream to a WHIP endpoint.
// Usage: const p = new WhipPublisher(url, {token, onState}); await p.start(stream?); ... await p.stop();
// States: "connecting" | "live" | "retrying" (endpoint busy/unreachable; backoff) | "stopped" | "error" (given up).
// Non-trickle: the offer carries every candidate. H.264 is preferred (what IVS and playcast's stage take best).

import { HttpSdpSession, preferH264, retryAfterMs } from "/static/webrtc-http.js";

const BACKOFF_BASE_MS = 1000;
const BACKOFF_CAP_MS = 30000;

export class WhipPublisher extends HttpSdpSession {
  constructor(url, { token = null, onState = () => {} } = {}) {
    super(url, token, onState);
    this.stream = null;
    this.ownStream = false;
    this.stopped = true;
    this.failures = 0;
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
      if (track.kind === "video") preferH264(tx, RTCRtpSender.getCapabilities?.("video")?.codecs);
    }
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      if (pc.connectionState === "connected") {
        this.failures = 0;
        this.onState("live");
      }
      if (pc.connectionState === "failed") this._retry("connection failed");
    };
    const { res, err } = await this._offer(pc);
    if (err) {
      this._retry(String(err));
      return;
    }
    if (res.status === 201) {
      await this._answer(pc, res);
      return;
    }
    const text = (await res.text()).trim();
    if (res.status >= 500 || res.status === 429 || res.status === 408) {
      this._retry(`${res.status} ${text}`, retryAfterMs(res));
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

  async stop() {
    super.stop();
    if (this.ownStream && this.stream) for (const t of this.stream.getTracks()) t.stop();
    this.stream = null;
    this.onState("stopped");
  }
}
