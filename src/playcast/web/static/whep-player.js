// WHEP player (draft-ietf-wish-whep): plays a playcast broadcast over WebRTC, receive-only, lowest latency.
// Usage: const p = new WhepPlayer(videoElement, whepUrl, {token, onState}); await p.start(); ... p.stop();
// States reported to onState: "connecting" | "live" | "waiting" (nothing live yet: 409, retrying) | "ended" | "error".

import { iceGathered } from "/static/ice.js";

const ICE_GATHERING_TIMEOUT_MS = 2000;

export class WhepPlayer {
  constructor(video, url, { token = null, onState = () => {}, retryMs = 2000 } = {}) {
    this.video = video;
    this.url = url;
    this.token = token;
    this.onState = onState;
    this.retryMs = retryMs;
    this.pc = null;
    this.location = null;
    this.stopped = false;
    this.timer = 0;
  }

  _headers(extra = {}) {
    const h = { ...extra };
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    return h;
  }

  async start() {
    this.stopped = false;
    this.onState("connecting");
    const pc = new RTCPeerConnection();
    this.pc = pc;
    const video = pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const caps = RTCRtpReceiver.getCapabilities?.("video");
    if (caps && video.setCodecPreferences) {
      const h264 = caps.codecs.filter((c) => /H264/i.test(c.mimeType));
      const rest = caps.codecs.filter((c) => !/H264/i.test(c.mimeType));
      if (h264.length) video.setCodecPreferences([...h264, ...rest]);
    }
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      stream.addTrack(e.track);
      if ("jitterBufferTarget" in e.receiver) e.receiver.jitterBufferTarget = 0;
      this.video.srcObject = stream;
      this.video.play?.().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      if (pc.connectionState === "connected") this.onState("live");
      if (pc.connectionState === "failed" || pc.connectionState === "closed") this._retry();
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
      this._retry();
      return;
    }
    if (res.status === 409 || res.status === 503) {
      const after = Number(res.headers.get("Retry-After")) * 1000 || this.retryMs;
      this.onState("waiting");
      this._retry(after);
      return;
    }
    if (res.status === 404) {
      this.onState("ended");
      this._close();
      return;
    }
    if (res.status !== 201) {
      this.onState("error", `${res.status} ${await res.text()}`);
      this._close();
      return;
    }
    this.location = new URL(res.headers.get("Location"), this.url).toString();
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
  }

  _retry(after = this.retryMs) {
    this._close();
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start().catch((e) => this.onState("error", String(e))), after);
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

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this._close();
  }

  async getStats() {
    return this.pc ? this.pc.getStats() : new Map();
  }
}
