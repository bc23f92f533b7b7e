// A small AppSync Events WebSocket client (subprotocol header auth, connection_init/ack, keep-alive watchdog,
// subscribe/publish/unsubscribe by id) plus playcast's recovery extension. Protocol only: no UI, no chat rules.

const PROTOCOL = "aws-appsync-event-ws";

export function randomId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

function b64url(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export class EventsError extends Error {
  constructor(type, message) {
    super(message);
    this.type = type;
  }
}

/** One AppSync Events connection: connection_init/ack, ka watchdog, subscribe/publish/unsubscribe by id, and
 * playcast's recovery extension (positions on `data`, `since` on subscribe, `gap`). */
export class EventsSocket {
  constructor({ realtimeUrl, httpUrl, token, onData, onState, onSubscribeError, onPosition, onGap }) {
    this.url = realtimeUrl;
    this.auth = { host: new URL(httpUrl).host, Authorization: token };
    this.onData = onData;
    this.onState = onState;
    this.onSubscribeError = onSubscribeError;
    this.onPosition = onPosition;
    this.onGap = onGap;
    this.subs = new Map(); // id -> {channel, ok}
    this.pending = new Map(); // publish id -> {resolve, reject, timer}
    this.ws = null;
    this.kaTimer = 0;
    this.timeoutMs = 300000;
    this.closed = false;
  }

  open() {
    return new Promise((resolve, reject) => {
      let acked = false;
      const ws = new WebSocket(this.url, [PROTOCOL, `header-${b64url(JSON.stringify(this.auth))}`]);
      this.ws = ws;
      ws.onopen = () => ws.send(JSON.stringify({ type: "connection_init" }));
      ws.onmessage = (e) => {
        let msg;
        try {
          msg = JSON.parse(e.data);
        } catch {
          return;
        }
        if (msg.type === "connection_ack") {
          acked = true;
          this.timeoutMs = msg.connectionTimeoutMs || this.timeoutMs;
          this.keepAlive();
          resolve();
          return;
        }
        this.handle(msg, reject, acked);
      };
      ws.onclose = (e) => {
        clearTimeout(this.kaTimer);
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(new EventsError("Disconnected", "the chat connection closed"));
        }
        this.pending.clear();
        if (!acked) reject(new EventsError("ConnectionFailed", e.reason || `closed (${e.code})`));
        if (!this.closed) this.onState("closed", e);
      };
    });
  }

  keepAlive() {
    clearTimeout(this.kaTimer);
    this.kaTimer = setTimeout(() => this.ws?.close(4000, "no keep-alive from the server"), this.timeoutMs);
  }

  handle(msg, rejectOpen, acked) {
    switch (msg.type) {
      case "ka":
        this.keepAlive();
        break;
      case "data": {
        const sub = this.subs.get(msg.id);
        if (!sub) return;
        let event = msg.event;
        try {
          event = typeof event === "string" ? JSON.parse(event) : event;
        } catch {
          return;
        }
        if (msg.epoch !== undefined) this.onPosition(sub.channel, { epoch: msg.epoch, offset: msg.offset });
        this.onData(sub.channel, event);
        break;
      }
      case "subscribe_success": {
        const sub = this.subs.get(msg.id);
        if (!sub) return;
        sub.ok = true;
        if (msg.recovered === false) this.onGap(sub.channel); // history moved on: what was missed is unknown
        else if (msg.epoch !== undefined && !sub.since) this.onPosition(sub.channel, { epoch: msg.epoch, offset: msg.offset });
        break;
      }
      case "gap": {
        const sub = this.subs.get(msg.id);
        if (!sub) return;
        if (msg.epoch !== undefined) this.onPosition(sub.channel, { epoch: msg.epoch, offset: msg.offset });
        this.onGap(sub.channel);
        break;
      }
      case "publish_success": {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        clearTimeout(p.timer);
        p.resolve(msg);
        break;
      }
      case "error":
      case "connection_error":
      case "subscribe_error":
      case "publish_error": {
        const err = (msg.errors && msg.errors[0]) || {};
        const e = new EventsError(err.errorType || "Error", err.message || "refused");
        if (msg.id && this.pending.has(msg.id)) {
          const p = this.pending.get(msg.id);
          this.pending.delete(msg.id);
          clearTimeout(p.timer);
          p.reject(e);
        } else if (msg.id && this.subs.has(msg.id)) {
          const sub = this.subs.get(msg.id);
          this.subs.delete(msg.id);
          this.onSubscribeError(sub.channel, e);
        } else if (!acked) {
          rejectOpen(e);
        } else {
          this.onState("error", e);
        }
        break;
      }
      default:
        break;
    }
  }

  subscribe(channel, since = null) {
    const id = randomId();
    this.subs.set(id, { channel, ok: false, since });
    const msg = { type: "subscribe", id, channel, authorization: this.auth };
    if (since) msg.since = since; // recover what was missed while away
    this.ws.send(JSON.stringify(msg));
    return id;
  }

  publish(channel, payloads) {
    const id = randomId();
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        reject(new EventsError("Disconnected", "not connected to the chat"));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new EventsError("Timeout", "the chat did not answer in time"));
      }, 10000);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({
        type: "publish", id, channel, events: payloads.map((p) => JSON.stringify(p)), authorization: this.auth,
      }));
    });
  }

  close() {
    this.closed = true;
    clearTimeout(this.kaTimer);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "bye");
  }
}
