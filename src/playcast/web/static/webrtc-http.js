// A WebRTC session negotiated over HTTP (WHEP player, WHIP publisher): the offer POST, the 201 answer, the DELETE.
// It must not decide what an answer's status means (wait, retry, give up): WhepPlayer and WhipPublisher do.

import { iceGathered } from "/sdk/ice.js";

const ICE_GATHERING_TIMEOUT_MS = 2000;

/** Puts H.264 first among `codecs` (RTCRtpSender/RTCRtpReceiver capabilities) on `transceiver`, where it can. */
export function preferH264(transceiver, codecs = []) {
  const h264 = codecs.filter((c) => /h264/i.test(c.mimeType));
  if (h264.length && transceiver.setCodecPreferences) {
    transceiver.setCodecPreferences([...h264, ...codecs.filter((c) => !/h264/i.test(c.mimeType))]);
  }
}

/** The wait a response's Retry-After asks for, in ms (0 when it names none). */
export function retryAfterMs(res) {
  return Number(res.headers.get("Retry-After")) * 1000 || 0;
}

/** One peer connection at a time, negotiated with the endpoint at `url` (Bearer `token` when given). */
export class HttpSdpSession {
  constructor(url, token, onState) {
    this.url = url;
    this.token = token;
    this.onState = onState;
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

  /** Offers from `pc` with every candidate gathered: `{res}`, or `{err}` when the endpoint could not be reached. */
  async _offer(pc) {
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, ICE_GATHERING_TIMEOUT_MS);
    try {
      const res = await fetch(this.url, {
        method: "POST",
        headers: this._headers({ "Content-Type": "application/sdp" }),
        body: pc.localDescription.sdp,
      });
      return { res };
    } catch (err) {
      return { err };
    }
  }

  /** Takes a 201's answer; the session lives at its Location from here on (DELETEd by _close). */
  async _answer(pc, res) {
    this.location = new URL(res.headers.get("Location"), this.url).toString();
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
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
