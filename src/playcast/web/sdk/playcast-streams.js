// playcast browser SDK: the GameLift Streams Web SDK surface (signal request/response, input, stats, app messages).
// Talks only WebRTC to the host; it never calls any HTTP API (the page's backend does that).

import { iceGathered } from "./ice.js";
import { DEFAULT_INPUT_CONFIGURATION, InputCapture } from "./input-capture.js";
import { NoticeCode, decodeControl, encodeHello } from "./input-encoder.js";

export const VERSION = "1.2.0";
export const MAX_APPLICATION_MESSAGE_BYTES = 65535;
export { DEFAULT_INPUT_CONFIGURATION };

export const DEFAULT_STREAM_CONFIGURATION = Object.freeze({
  enableAudio: true,
  maximumKbps: null,
  maximumResolution: "1080p",
  iceServers: [],
  forceRelay: false,
  forceVideoCodec: null, // "h264.constrained.31" | "h264.constrained" | "h264.baseline" | "h264.main.31" | ...
  connectTimeoutMs: 30000, // playcast extension: processSignalResponse() rejects after this long
});

const ICE_GATHERING_TIMEOUT_MS = 5000;
const CONNECT_TIMEOUT_MS = 30000;

let logLevel = "none";

/** "none" | "debug" (GameLift-compatible). */
export function setLogLevel(level) {
  logLevel = level === "debug" ? "debug" : "none";
}

function debug(...args) {
  if (logLevel === "debug") console.debug("[playcast]", ...args);
}

function randomId() {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// profile-level-id prefixes for forceVideoCodec
const H264_PROFILES = {
  "h264.constrained": "42e0", "h264.baseline": "4200", "h264.main": "4d00", "h264.high": "6400",
};

function h264Preferences(forced) {
  const caps = typeof RTCRtpReceiver !== "undefined" && RTCRtpReceiver.getCapabilities
    ? RTCRtpReceiver.getCapabilities("video") : null;
  if (!caps) return null;
  const h264 = caps.codecs.filter((c) => c.mimeType.toLowerCase() === "video/h264");
  if (!h264.length) return null;
  const fmtp = (c) => c.sdpFmtpLine ?? "";
  const plid = (c) => (/profile-level-id=([0-9a-f]{6})/i.exec(fmtp(c))?.[1] ?? "").toLowerCase();
  const score = (c) => {
    let s = 0;
    if (/packetization-mode=1/.test(fmtp(c))) s += 4;
    if (plid(c).startsWith("42e0")) s += 2; // constrained baseline: what zerolatency encoders emit
    if (forced) {
      const [name, level] = forced.split(".").length > 2
        ? [forced.split(".").slice(0, 2).join("."), forced.split(".")[2]] : [forced, null];
      const prefix = H264_PROFILES[name];
      if (prefix && plid(c).startsWith(prefix) && (!level || plid(c).endsWith(Number(level).toString(16)))) s += 16;
    }
    return s;
  };
  const ordered = h264.sort((a, b) => score(b) - score(a));
  const extra = caps.codecs.filter((c) => /^video\/(rtx|red|ulpfec)$/i.test(c.mimeType));
  return [...ordered, ...extra];
}

function limitBandwidth(sdp, kbps) {
  if (!kbps) return sdp;
  return sdp.replace(/(m=video[^\r\n]*\r\n(?:[icb]=[^\r\n]*\r\n)*)/, (block) =>
    block.includes("b=AS:") ? block : `${block}b=AS:${Math.round(kbps)}\r\n`);
}

export class PlaycastStreams {
  /**
   * args: {videoElement, audioElement?, inputConfiguration?, clientConnection?, streamConfiguration?}
   */
  constructor(args = {}) {
    if (!args.videoElement) throw new TypeError("PlaycastStreams: videoElement is required");
    this._id = randomId();
    this.videoElement = args.videoElement;
    this.audioElement = args.audioElement ?? null;
    this.inputConfiguration = { ...DEFAULT_INPUT_CONFIGURATION, ...(args.inputConfiguration ?? {}) };
    this.streamConfiguration = { ...DEFAULT_STREAM_CONFIGURATION, ...(args.streamConfiguration ?? {}) };
    this.clientConnection = args.clientConnection ?? {};
    this.hostInfo = null; // {version, gamepadAvailable} once the host answered HELLO
    this._pc = null;
    this._input = null;
    this._messages = null;
    this._pendingMessages = [];
    this._closed = false;
    this._serverDisconnected = null;
    this._video = { receiver: null, track: null };
    this._videoStream = null;
    this._audio = { receiver: null, track: null };
    this._capture = new InputCapture({
      element: this.videoElement,
      send: (bytes) => this._sendInput(bytes),
      config: this.inputConfiguration,
      log: debug,
    });
  }

  /** Random identifier of this client object (16 hex characters). */
  get id() {
    return this._id;
  }

  get connectionState() {
    return this._pc ? this._pc.connectionState : "new";
  }

  get inputAttached() {
    return this._capture.attached;
  }

  get peerConnection() {
    return this._pc;
  }

  async enableMicrophone() {
    throw new Error("PlaycastStreams: microphone input is not supported by this version");
  }

  // ---- signaling --------------------------------------------------------------------------------

  /** Build the WebRTC offer (ICE gathered, no trickle) and return it as the SignalRequest string. */
  async generateSignalRequest() {
    this._checkOpen();
    if (this._pc) throw new Error("PlaycastStreams: generateSignalRequest() was already called; create a new object");
    const sc = this.streamConfiguration;
    const pc = new RTCPeerConnection({
      iceServers: sc.iceServers ?? [],
      iceTransportPolicy: sc.forceRelay ? "relay" : "all",
      bundlePolicy: "max-bundle",
    });
    this._pc = pc;
    const video = pc.addTransceiver("video", { direction: "recvonly" });
    const prefs = h264Preferences(sc.forceVideoCodec);
    if (prefs && video.setCodecPreferences) {
      try {
        video.setCodecPreferences(prefs);
      } catch (err) {
        debug("setCodecPreferences failed", err);
      }
    }
    const audio = pc.addTransceiver("audio", { direction: "recvonly" });
    this._video.receiver = video.receiver;
    this._audio.receiver = audio.receiver;
    for (const r of [video.receiver, audio.receiver]) {
      if ("jitterBufferTarget" in r) r.jitterBufferTarget = 0;
      if ("playoutDelayHint" in r) r.playoutDelayHint = 0;
    }
    pc.addEventListener("track", (e) => this._onTrack(e));
    pc.addEventListener("connectionstatechange", () => this._onConnectionState());

    this._input = pc.createDataChannel("input", { ordered: true });
    this._input.binaryType = "arraybuffer";
    this._input.addEventListener("open", () => this._input.send(encodeHello()));
    this._input.addEventListener("message", (e) => this._onControl(e.data));
    this._input.addEventListener("error", (e) => this._channelError("input", e));
    this._messages = pc.createDataChannel("messages", { ordered: true });
    this._messages.binaryType = "arraybuffer";
    this._messages.addEventListener("open", () => this._flushMessages());
    this._messages.addEventListener("message", (e) => this._onApplicationMessage(e.data));
    this._messages.addEventListener("error", (e) => this._channelError("messages", e));

    const offer = await pc.createOffer();
    await pc.setLocalDescription({ type: "offer", sdp: limitBandwidth(offer.sdp, sc.maximumKbps) });
    await iceGathered(pc, ICE_GATHERING_TIMEOUT_MS);
    this._checkOpen();
    debug("offer ready");
    return JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp });
  }

  /** Apply the host's answer; resolves when the peer is connected and the input channel is open. */
  async processSignalResponse(signalResponse) {
    this._checkOpen();
    if (!this._pc) throw new Error("PlaycastStreams: call generateSignalRequest() first");
    let answer;
    try {
      answer = typeof signalResponse === "string" ? JSON.parse(signalResponse) : signalResponse;
    } catch {
      throw new Error("PlaycastStreams: the signal response is not JSON");
    }
    if (!answer || answer.type !== "answer" || typeof answer.sdp !== "string") {
      throw new Error("PlaycastStreams: the signal response is not a WebRTC answer");
    }
    await this._pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    await this._connected();
  }

  _connected() {
    const pc = this._pc;
    const ready = () => pc.connectionState === "connected" && this._input.readyState === "open";
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        pc.removeEventListener("connectionstatechange", check);
        this._input.removeEventListener("open", check);
        this._input.removeEventListener("close", check);
      };
      const check = () => {
        if (ready()) {
          cleanup();
          resolve();
        } else if (["failed", "closed"].includes(pc.connectionState) || this._input.readyState === "closed") {
          cleanup();
          reject(new Error(`PlaycastStreams: connection ${pc.connectionState}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error("PlaycastStreams: timed out connecting to the host"));
      }, this.streamConfiguration.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
      pc.addEventListener("connectionstatechange", check);
      this._input.addEventListener("open", check);
      this._input.addEventListener("close", check);
    });
  }

  _onTrack(e) {
    const track = e.track;
    const r = e.receiver;
    if ("jitterBufferTarget" in r) r.jitterBufferTarget = 0;
    if ("playoutDelayHint" in r) r.playoutDelayHint = 0;
    const play = (el) => el.play?.().catch((err) => debug("autoplay blocked", err));
    if (!this._videoStream) {
      this._videoStream = new MediaStream();
      this.videoElement.srcObject = this._videoStream; // one stream per connection: tracks are added to it
    }
    if (track.kind === "video") {
      this._video.track = track;
      this._videoStream.addTrack(track);
      play(this.videoElement);
    } else if (track.kind === "audio") {
      this._audio.track = track;
      if (!this.streamConfiguration.enableAudio) return;
      if (this.audioElement) {
        this.audioElement.srcObject = new MediaStream([track]);
        play(this.audioElement);
      } else {
        this._videoStream.addTrack(track);
        play(this.videoElement);
      }
    }
  }

  _onConnectionState() {
    const state = this._pc.connectionState;
    debug("connection state", state);
    if (state === "failed" || state === "closed") this._capture.forgetHeld();
    this._callback("connectionState", state);
  }

  // ---- channels ---------------------------------------------------------------------------------

  _sendInput(bytes) {
    if (this._closed || !this._input || this._input.readyState !== "open") return false;
    try {
      this._input.send(bytes);
      return true;
    } catch (err) {
      debug("input send failed", err);
      return false;
    }
  }

  _onControl(data) {
    if (typeof data === "string") {
      debug("text on input channel ignored");
      return;
    }
    const msg = decodeControl(new Uint8Array(data));
    switch (msg.type) {
      case "serverDisconnect":
        this._serverDisconnected = msg.reason;
        this._capture.detach();
        this._callback("serverDisconnect", msg.reason);
        break;
      case "hostInfo":
        this.hostInfo = { version: msg.version, gamepadAvailable: msg.gamepadAvailable };
        this._capture.gamepadStatesEnabled = msg.gamepadAvailable;
        this._callback("hostInfo", this.hostInfo);
        break;
      case "notice":
        if (msg.code === NoticeCode.GAMEPAD_UNAVAILABLE) {
          this.hostInfo = { ...(this.hostInfo ?? { version: 1 }), gamepadAvailable: false };
          this._capture.gamepadStatesEnabled = false;
        }
        this._callback("notice", {
          code: msg.code,
          kind: msg.code === NoticeCode.GAMEPAD_UNAVAILABLE ? "gamepadUnavailable"
            : msg.code === NoticeCode.INPUT_ERROR ? "inputError" : "unknown",
          text: msg.text,
        });
        break;
      case "cursor":
        this._capture.setRemoteCursorVisible(msg.visible);
        break;
      case "performanceStats": {
        const s = msg.stats;
        const ts = s.timestamp;
        this._callback("performanceStats", { ...s, timestamp: ts !== undefined ? new Date(ts) : new Date() });
        break;
      }
      default:
        debug("invalid control message", msg.error);
    }
  }

  _onApplicationMessage(data) {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : new Uint8Array(data);
    this._callback("applicationMessage", bytes);
  }

  _channelError(label, e) {
    const err = e?.error ?? new Error(`data channel "${label}" error`);
    debug("channel error", label, err);
    this._callback("channelError", err);
  }

  _flushMessages() {
    const queued = this._pendingMessages.splice(0);
    for (const m of queued) this._messages.send(m);
  }

  /** Send bytes to the game (≤ 65535 bytes). Queued until the channel opens; false when not possible. */
  sendApplicationMessage(message) {
    if (this._closed || !this._messages) return false;
    if (!(message instanceof Uint8Array) || message.byteLength > MAX_APPLICATION_MESSAGE_BYTES) return false;
    const state = this._messages.readyState;
    if (state === "connecting") {
      this._pendingMessages.push(message.slice());
      return true;
    }
    if (state !== "open") return false;
    try {
      this._messages.send(message);
      return true;
    } catch (err) {
      debug("application message send failed", err);
      return false;
    }
  }

  _callback(name, ...args) {
    const fn = this.clientConnection?.[name];
    if (typeof fn !== "function") return;
    try {
      fn.apply(this.clientConnection, args);
    } catch (err) {
      console.error(`[playcast] clientConnection.${name} threw`, err);
    }
  }

  // ---- input ------------------------------------------------------------------------------------

  /** Start forwarding keyboard/mouse/gamepad input (after processSignalResponse resolved). */
  attachInput() {
    this._checkOpen();
    if (this._serverDisconnected !== null) return;
    this._capture.attach();
  }

  detachInput() {
    this._capture.detach();
  }

  processKeyboardEvent(e) {
    return this._capture.processKeyboardEvent(e);
  }

  processMouseEvent(e) {
    return this._capture.processMouseEvent(e);
  }

  addGamepad(gamepad) {
    return this._capture.addGamepad(gamepad);
  }

  removeGamepad(gamepad) {
    return this._capture.removeGamepad(gamepad);
  }

  processGamepads() {
    return this._capture.processGamepads();
  }

  // ---- stats ------------------------------------------------------------------------------------

  async getVideoRTCStats() {
    this._checkConnectedObject();
    return this._pc.getStats(this._video.receiver?.track ?? null);
  }

  async getAudioRTCStats() {
    this._checkConnectedObject();
    return this._pc.getStats(this._audio.receiver?.track ?? null);
  }

  async getMicrophoneRTCStats() {
    return new Map();
  }

  /** Stats of the input data channel plus the transport it runs on (a Map, RTCStatsReport-like). */
  async getInputRTCStats() {
    this._checkConnectedObject();
    const report = await this._pc.getStats();
    const out = new Map();
    report.forEach((s) => {
      if ((s.type === "data-channel" && s.label === "input") || s.type === "transport"
          || (s.type === "candidate-pair" && (s.nominated || s.selected))) {
        out.set(s.id, s);
      }
    });
    return out;
  }

  _checkConnectedObject() {
    this._checkOpen();
    if (!this._pc) throw new Error("PlaycastStreams: not connected");
  }

  _checkOpen() {
    if (this._closed) throw new Error("PlaycastStreams: this object was closed; create a new one");
  }

  // ---- teardown ---------------------------------------------------------------------------------

  /** Stop input, close channels and the peer connection. The object cannot be used again. */
  close() {
    if (this._closed) return;
    this._capture.detach();
    this._closed = true;
    for (const ch of [this._input, this._messages]) {
      try {
        ch?.close();
      } catch {
        /* already closed */
      }
    }
    if (this._pc) {
      this._pc.close();
      this._callback("connectionState", "closed");
    }
    this._pendingMessages = [];
    this.videoElement.srcObject = null;
    if (this.audioElement) this.audioElement.srcObject = null;
  }
}

export { PlaycastStreams as GameLiftStreams };
export default PlaycastStreams;
