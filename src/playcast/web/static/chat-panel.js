// <playcast-chat room="<streamSessionId>">: the chat panel of the player and viewer pages (messages, reactions
// with floating animations, viewer count, moderator actions). Speaks the AppSync Events WebSocket protocol itself
// with a token from /v1/events/token (appsync-events.js); no SDK, no build step. UI only: rules live on the server.

import { EventsError, EventsSocket } from "./appsync-events.js";

const NAME_KEY = "playcast.chatName";
const HISTORY = 50;
const MAX_ITEMS = 300;
const MAX_BACKOFF_MS = 15000;

const TEMPLATE = `
  <div class="panel" part="panel">
    <header>
      <h2>Chat</h2>
      <span class="viewers" title="Viewers in this chat"><svg viewBox="0 0 24 24" aria-hidden="true"><path d="M2 12s3.6-7 10-7 10 7 10 7-3.6 7-10 7S2 12 2 12z"/><circle cx="12" cy="12" r="3"/></svg><b class="viewer-count">0</b></span>
      <span class="spacer"></span>
      <button class="name" type="button" title="Change your name"></button>
      <span class="conn" title="Chat connection"></span>
    </header>
    <ol class="log" aria-live="polite" aria-label="Chat messages"></ol>
    <div class="notice" role="status" hidden></div>
    <div class="reactions" role="group" aria-label="Reactions"></div>
    <form class="send">
      <label class="sr-only" for="chatText">Message</label>
      <input id="chatText" class="text" autocomplete="off" maxlength="500" placeholder="Say something…" disabled>
      <button class="btn primary small" type="submit" disabled>Send</button>
    </form>
    <div class="floats" aria-hidden="true"></div>
  </div>`;

export class PlaycastChat extends HTMLElement {
  static get observedAttributes() {
    return ["room"];
  }

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = new URL("./chat-panel.css", import.meta.url).href;
    this.root.append(css);
    const tpl = document.createElement("template");
    tpl.innerHTML = TEMPLATE;
    this.root.append(tpl.content.cloneNode(true));
    const q = (s) => this.root.querySelector(s);
    this.el = {
      log: q(".log"), notice: q(".notice"), reactions: q(".reactions"), form: q(".send"), text: q(".text"),
      send: q(".send button"), viewers: q(".viewer-count"), conn: q(".conn"), name: q(".name"), floats: q(".floats"),
    };
    this.socket = null;
    this.session = null; // token response
    this.state = "idle";
    this.viewers = 0;
    this.attempt = 0;
    this.retryTimer = 0;
    this.noticeTimer = 0;
    this.generation = 0;
    this.items = new Map(); // message id -> li
    this.deleted = new Set();
    this.positions = new Map(); // channel -> {epoch, offset} of the last event seen (for recovery)
    this.el.form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = this.el.text.value.trim();
      if (!text) return;
      this.send(text).then(() => {
        this.el.text.value = "";
      }, (err) => this.notice(err.message, "bad"));
    });
    this.el.name.addEventListener("click", () => this.rename());
    this.el.log.addEventListener("click", (e) => this.onModClick(e));
  }

  get room() {
    return this.getAttribute("room") || "";
  }

  set room(value) {
    if (value) this.setAttribute("room", value);
    else this.removeAttribute("room");
  }

  get role() {
    return this.session?.room?.role ?? null;
  }

  get canModerate() {
    return Boolean(this.session?.room?.canModerate);
  }

  connectedCallback() {
    if (this.room && this.state === "idle") this.start();
  }

  disconnectedCallback() {
    this.stop();
  }

  attributeChangedCallback(name, oldValue, newValue) {
    if (name !== "room" || oldValue === newValue || !this.isConnected) return;
    this.stop();
    this.clear();
    if (newValue) this.start();
  }

  // ---- public API ----------------------------------------------------------------------------------

  async send(content, attributes = undefined) {
    const body = { content };
    if (attributes) body.attributes = attributes;
    return this.publishOne(`/chat/${this.room}`, body);
  }

  async react(kind) {
    return this.publishOne(`/chat/${this.room}/reactions`, { kind });
  }

  async deleteMessage(messageId, reason = undefined) {
    return this.publishOne(`/chat/${this.room}`, { action: "DELETE_MESSAGE", messageId, reason });
  }

  async banUser(userId, reason = undefined) {
    return this.publishOne(`/chat/${this.room}`, { action: "BAN_USER", userId, reason });
  }

  stop() {
    this.generation += 1;
    clearTimeout(this.retryTimer);
    if (this.socket) this.socket.close();
    this.socket = null;
    this.setState("idle");
  }

  // ---- connection ----------------------------------------------------------------------------------

  async start() {
    const gen = ++this.generation;
    const room = this.room;
    if (!room) return;
    this.setState(this.attempt ? "reconnecting" : "connecting");
    try {
      const name = localStorage.getItem(NAME_KEY);
      const params = new URLSearchParams({ room });
      if (name) params.set("displayName", name);
      const res = await fetch(`${this.getAttribute("token-url") || "/v1/events/token"}?${params}`,
        { credentials: "same-origin" });
      const doc = await res.json().catch(() => ({}));
      if (!res.ok) {
        const err = new EventsError(doc?.error?.type ?? `HTTP ${res.status}`, doc?.error?.message ?? res.statusText);
        err.status = res.status;
        throw err;
      }
      if (gen !== this.generation) return;
      this.session = doc;
      this.renderChrome();
      const socket = new EventsSocket({
        realtimeUrl: doc.realtimeUrl, httpUrl: doc.httpUrl, token: doc.token,
        onData: (channel, event) => this.onEvent(channel, event),
        onState: (state, info) => gen === this.generation && this.onSocketState(state, info),
        onSubscribeError: (channel, err) => gen === this.generation && this.onSubscribeError(channel, err),
        onPosition: (channel, pos) => this.positions.set(channel, pos),
        onGap: (channel) => gen === this.generation && channel === `/chat/${room}` && this.loadHistory(room, gen),
      });
      this.socket = socket;
      await socket.open();
      if (gen !== this.generation) return socket.close();
      for (const sub of ["", "/reactions", "/meta", "/presence", "/game"]) {
        const channel = `/chat/${room}${sub}`;
        socket.subscribe(channel, this.positions.get(channel) ?? null);
      }
      await this.loadHistory(room, gen);
      if (gen !== this.generation) return;
      this.attempt = 0;
      this.setState("live");
    } catch (err) {
      if (gen !== this.generation) return;
      if (this.socket) this.socket.close();
      this.socket = null;
      if (err.status === 503) {
        this.setState("unavailable"); // this server runs without chat: the page may hide the panel
        this.notice(err.message, "warn", 0);
        return;
      }
      if ([401, 403, 404].includes(err.status)) {
        this.setState(err.status === 403 && /banned/i.test(err.message) ? "banned" : "error");
        this.notice(err.message, "bad", 0);
        return;
      }
      this.retry(err);
    }
  }

  retry(err) {
    this.attempt += 1;
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(this.attempt - 1, 5)) * (0.75 + Math.random() / 2);
    this.setState("reconnecting");
    if (err) this.notice(`Chat connection lost (${err.message}); retrying…`, "warn", delay + 1000);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.start(), delay);
  }

  onSocketState(state, info) {
    if (state === "closed") {
      this.socket = null;
      if (this.state === "banned") return;
      this.retry(new EventsError("Closed", info?.reason || "the server closed the connection"));
    } else if (state === "error") {
      this.notice(info.message, "bad");
    }
  }

  onSubscribeError(channel, err) {
    if (/banned/i.test(err.message)) {
      this.setState("banned");
      this.notice("You were banned from this chat.", "bad", 0);
      this.socket?.close();
      return;
    }
    this.notice(`Could not join ${channel}: ${err.message}`, "bad");
  }

  async loadHistory(room, gen) {
    const res = await fetch(`/v1/chat/${encodeURIComponent(room)}/messages?latest=${HISTORY}`,
      { credentials: "same-origin" });
    if (!res.ok || gen !== this.generation) return;
    const doc = await res.json();
    for (const item of doc.items || []) {
      if (item.type === "MESSAGE") {
        this.addMessage(item, true);
        if (item.deleted) this.applyDelete(item.id);
      } else if (item.type === "DELETE_MESSAGE") {
        this.applyDelete(item.messageId);
      }
    }
  }

  async publishOne(channel, payload) {
    if (!this.socket) throw new EventsError("Disconnected", "not connected to the chat");
    const res = await this.socket.publish(channel, [payload]);
    const failed = res.failed && res.failed[0];
    if (failed) throw new EventsError(failed.code || "Failed", failed.message || "refused");
    return res;
  }

  // ---- incoming ------------------------------------------------------------------------------------

  onEvent(channel, event) {
    if (!event || typeof event !== "object") return;
    switch (event.type) {
      case "MESSAGE":
        this.addMessage(event);
        break;
      case "DELETE_MESSAGE":
        this.applyDelete(event.messageId);
        break;
      case "REACTION":
        this.floatReaction(event.emoji || "✨");
        this.fire("chat-reaction", event);
        break;
      case "PRESENCE":
        this.setViewers(event.viewers ?? 0);
        this.fire("chat-presence", event);
        break;
      case "BAN_USER":
        this.system(`${this.nameOf(event.userId)} was banned`, "mod");
        if (event.userId === this.session?.userId) {
          this.setState("banned");
          this.notice("You were banned from this chat.", "bad", 0);
        }
        break;
      case "UNBAN_USER":
        this.system(`${this.nameOf(event.userId)} may chat again`, "mod");
        break;
      case "DISCONNECT_USER":
        this.system(`${this.nameOf(event.userId)} was disconnected`, "mod");
        break;
      case "EVENT":
        this.system(`${event.name}${this.describeAttrs(event.attributes)}`, "meta");
        this.fire("chat-event", event);
        break;
      case "GAME": {
        const d = event.data;
        const echoed = d && typeof d === "object" && d.type === "chat" ? this.items.get(d.id) : null;
        if (echoed) {
          echoed.classList.add("game-seen"); // the game got this message: a small mark, not a second line
          echoed.title = "The game received this message";
        } else if (d && typeof d === "object" && d.type === "reaction") {
          this.system(`game: ${d.user ?? "someone"} reacted ${d.emoji ?? ""}`, "game");
        } else {
          this.system(`game: ${event.text ?? (d === undefined ? `${event.binaryBytes ?? 0} bytes` : JSON.stringify(d))}`,
            "game");
        }
        this.fire("chat-game", event);
        break;
      }
      default:
        break;
    }
  }

  describeAttrs(attrs) {
    const pairs = Object.entries(attrs || {});
    return pairs.length ? ` · ${pairs.map(([k, v]) => `${k}: ${v}`).join(", ")}` : "";
  }

  nameOf(userId) {
    for (const li of this.items.values()) if (li.dataset.user === userId) return li.dataset.name;
    return userId;
  }

  addMessage(m, fromHistory = false) {
    if (!m.id || this.items.has(m.id)) return;
    const li = document.createElement("li");
    li.className = "msg";
    li.dataset.id = m.id;
    li.dataset.user = m.sender?.userId ?? "";
    li.dataset.name = m.sender?.displayName ?? "someone";
    li.dataset.role = m.sender?.role ?? "viewer";
    if (m.sender?.userId && m.sender.userId === this.session?.userId) li.classList.add("mine");
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = li.dataset.name;
    const line = [who];
    if (["player", "moderator", "admin", "system"].includes(li.dataset.role)) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = li.dataset.role === "moderator" ? "mod" : li.dataset.role;
      line.push(badge);
    }
    const text = document.createElement("span");
    text.className = "content";
    text.textContent = m.content ?? "";
    const time = document.createElement("time");
    time.dateTime = m.sendTime ?? "";
    time.textContent = m.sendTime ? new Date(m.sendTime).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
    li.append(...line, text, time);
    if (this.canModerate && !li.classList.contains("mine")) li.append(this.modActions(li));
    this.items.set(m.id, li);
    this.append(li);
    if (!fromHistory) this.fire("chat-message", m);
  }

  modActions(li) {
    const box = document.createElement("span");
    box.className = "mod-actions";
    const del = document.createElement("button");
    del.type = "button";
    del.dataset.act = "delete";
    del.title = "Delete this message for everyone";
    del.textContent = "Delete";
    box.append(del);
    if (li.dataset.user && !["player", "admin", "system"].includes(li.dataset.role)) {
      const ban = document.createElement("button");
      ban.type = "button";
      ban.dataset.act = "ban";
      ban.title = `Ban ${li.dataset.name} from this chat`;
      ban.textContent = "Ban";
      box.append(ban);
    }
    return box;
  }

  onModClick(e) {
    const btn = e.target.closest("button[data-act]");
    if (!btn) return;
    const li = btn.closest("li.msg");
    const act = btn.dataset.act === "delete" ? this.deleteMessage(li.dataset.id) : this.banUser(li.dataset.user);
    btn.disabled = true;
    act.catch((err) => {
      btn.disabled = false;
      this.notice(err.message, "bad");
    });
  }

  applyDelete(messageId) {
    this.deleted.add(messageId);
    const li = this.items.get(messageId);
    if (!li || li.classList.contains("deleted")) return;
    li.classList.add("deleted");
    li.querySelector(".content").textContent = "message removed by a moderator";
    li.querySelector(".mod-actions")?.remove();
  }

  system(text, kind) {
    const li = document.createElement("li");
    li.className = `sys ${kind}`;
    li.textContent = text;
    this.append(li);
  }

  append(li) {
    const log = this.el.log;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(li);
    while (log.children.length > MAX_ITEMS) {
      const first = log.firstElementChild;
      if (first.dataset.id) this.items.delete(first.dataset.id);
      first.remove();
    }
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  clear() {
    this.items.clear();
    this.deleted.clear();
    this.positions.clear();
    this.el.log.replaceChildren();
    this.setViewers(0);
  }

  // ---- chrome --------------------------------------------------------------------------------------

  renderChrome() {
    const room = this.session?.room ?? {};
    this.el.name.textContent = this.session?.displayName ?? "";
    this.el.text.maxLength = room.maxMessageLength || 500;
    this.dataset.role = room.role || "viewer";
    const kinds = Object.entries(room.reactions || {});
    this.el.reactions.replaceChildren(...kinds.map(([kind, emoji]) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "react";
      b.dataset.kind = kind;
      b.title = kind;
      b.textContent = emoji;
      b.addEventListener("click", () => this.react(kind).catch((err) => this.notice(err.message, "warn")));
      return b;
    }));
    for (const li of this.items.values()) {
      li.querySelector(".mod-actions")?.remove();
      if (this.canModerate && !li.classList.contains("mine") && !li.classList.contains("deleted")) li.append(this.modActions(li));
    }
  }

  rename() {
    const current = this.session?.displayName ?? "";
    const input = document.createElement("input");
    input.className = "name-input";
    input.value = current;
    input.maxLength = 32;
    input.setAttribute("aria-label", "Your name in the chat");
    this.el.name.replaceWith(input);
    input.focus();
    input.select();
    const done = (save) => {
      input.replaceWith(this.el.name);
      const name = input.value.trim();
      if (save && name && name !== current) {
        localStorage.setItem(NAME_KEY, name);
        this.el.name.textContent = name;
        this.stop();
        this.start();
      }
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") done(true);
      else if (e.key === "Escape") done(false);
    });
    input.addEventListener("blur", () => input.isConnected && done(true));
  }

  setState(state) {
    this.state = state;
    this.dataset.state = state;
    this.el.conn.dataset.state = state;
    this.el.conn.title = `Chat: ${state}`;
    const live = state === "live";
    this.el.text.disabled = !live;
    this.el.send.disabled = !live;
    for (const b of this.el.reactions.querySelectorAll("button")) b.disabled = !live;
    if (live) this.el.notice.hidden = true;
    this.fire("chat-state", { state });
  }

  setViewers(n) {
    this.viewers = n;
    this.dataset.viewers = String(n);
    this.el.viewers.textContent = String(n);
  }

  notice(text, kind = "", ms = 5000) {
    const n = this.el.notice;
    n.textContent = text;
    n.className = `notice ${kind}`;
    n.hidden = false;
    clearTimeout(this.noticeTimer);
    if (ms) this.noticeTimer = setTimeout(() => { n.hidden = true; }, ms);
  }

  floatReaction(emoji) {
    const layers = [this.el.floats];
    const targetId = this.getAttribute("float-target");
    const target = targetId ? document.getElementById(targetId) : null;
    if (target) layers.push(target);
    for (const layer of layers) {
      const span = document.createElement("span");
      span.className = "float";
      span.textContent = emoji;
      const x = 10 + Math.random() * 75;
      Object.assign(span.style, {
        position: "absolute", left: `${x}%`, bottom: "8%", fontSize: layer === this.el.floats ? "28px" : "44px",
        pointerEvents: "none", zIndex: 5, userSelect: "none", filter: "drop-shadow(0 4px 10px rgba(0,0,0,.5))",
      });
      layer.append(span);
      const drift = (Math.random() - 0.5) * 80;
      const anim = span.animate([
        { transform: "translate(0, 0) scale(0.6)", opacity: 0 },
        { transform: `translate(${drift / 3}px, -40px) scale(1.15)`, opacity: 1, offset: 0.15 },
        { transform: `translate(${drift}px, -260px) scale(1)`, opacity: 0 },
      ], { duration: 2200 + Math.random() * 600, easing: "cubic-bezier(.2,.6,.3,1)" });
      anim.onfinish = () => span.remove();
      setTimeout(() => span.remove(), 4000);
    }
  }

  fire(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true }));
  }
}

if (!customElements.get("playcast-chat")) customElements.define("playcast-chat", PlaycastChat);
