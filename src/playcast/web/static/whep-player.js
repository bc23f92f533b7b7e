// WHEP player (draft-ietf-wish-whep): plays a playcast broadcast over WebRTC, receive-only, lowest latency.
// Usage: const p = new WhepPlayer(videoElement, whepUrl, {token, onState}); await p.start(); ... p.stop();
// States reported to onState: "connecting" | "live" | "waiting" (nothing live yet: 409, retrying) | "ended" | "error".

import { HttpSdpSession, preferH264, retryAfterMs } from "/static/webrtc-http.js";

export class WhepPlayer extends HttpSdpSession {
  constructor(video, url, { token = null, onState = () => {}, retryMs = 2000 } = {}) {
    super(url, token, onState);
    this.video = video;
    this.retryMs = retryMs;
  }

  async start() {
    this.stopped = false;
    this.onState("connecting");
    const pc = new RTCPeerConnection();
    this.pc = pc;
    const video = pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    preferH264(video, RTCRtpReceiver.getCapabilities?.("video")?.codecs);
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
    const { res, err } = await this._offer(pc);
    if (err) {
      this._retry();
      return;
    }
    if (res.status === 409 || res.status === 503) {
      this.onState("waiting");
      this._retry(retryAfterMs(res) || this.retryMs);
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
    await this._answer(pc, res);
  }

  _retry(after = this.retryMs) {
    this._close();
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start().catch((e) => this.onState("error", String(e))), after);
  }
}
