// The player page: pick a game, start/resume/end a session through /v1/play/*, show the stream with the SDK.
// Uses only the SDK and the first-party /v1/play endpoints; all WebRTC details stay inside the SDK.

import { PlaycastStreams } from "/sdk/playcast-streams.js";
import { StatsTracker } from "/sdk/stats.js";
import "/static/chat-panel.js";
import { toast } from "/static/toast.js";

const STORAGE_KEY = "playcast.session";
const FINAL = new Set(["TERMINATED", "TERMINATING", "ERROR"]);
const MAX_RECONNECT_ATTEMPTS = 6;
const DISCONNECT_GRACE_MS = 3000;

const $ = (id) => document.getElementById(id);
const root = document.documentElement;
const el = {
  picker: $("picker"), game: $("game"), play: $("play"), statusText: $("statusText"),
  video: $("video"), audio: $("audio"), screen: $("screen"),
  cardTitle: $("cardTitle"), cardText: $("cardText"), cardActions: $("cardActions"),
  stats: $("stats"), statsList: $("statsList"), statsToggle: $("statsToggle"),
  fullscreen: $("fullscreen"), end: $("end"), padIndicator: $("padIndicator"),
  messages: $("messages"), messagesToggle: $("messagesToggle"), messagesClose: $("messagesClose"),
  messageLog: $("messageLog"), messageForm: $("messageForm"), messageText: $("messageText"),
  messageSend: $("messageSend"), chat: $("chat"), share: $("share"),
};

let apps = [];
let sdk = null; // the current PlaycastStreams (also window.playcast)
let session = null; // {sessionId, applicationId, streamGroupId}
let reconnectAttempts = 0;
let reconnectTimer = 0;
let graceTimer = 0;
let statsTimer = 0;
let lastPerf = null;
let gamepadWarned = false;
const tracker = new StatsTracker();

// ---- HTTP ----------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

async function api(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, "NetworkError", "The server cannot be reached.");
  }
  if (res.status === 204) return null;
  let doc = null;
  try {
    doc = await res.json();
  } catch {
    doc = null;
  }
  if (!res.ok) {
    throw new ApiError(res.status, doc?.error?.type ?? `HTTP ${res.status}`,
      doc?.error?.message ?? `The server answered ${res.status} ${res.statusText}`.trim());
  }
  return doc;
}

// ---- state and UI --------------------------------------------------------------------------------

const STATUS_TEXT = {
  idle: "Idle", starting: "Starting", playing: "Live", reconnecting: "Reconnecting", ended: "Ended", error: "Error",
};

function action(label, fn, kind = "ghost") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `btn ${kind}`;
  b.textContent = label;
  b.addEventListener("click", fn);
  return b;
}

function setState(state, { title = "", text = "", actions = [], error = null } = {}) {
  root.dataset.state = state;
  if (error) root.dataset.error = error;
  else delete root.dataset.error;
  el.statusText.textContent = STATUS_TEXT[state] ?? state;
  el.cardTitle.textContent = title;
  el.cardText.textContent = text ? text[0].toUpperCase() + text.slice(1) : "";
  el.cardActions.replaceChildren(...actions);
  const busy = state === "starting" || state === "reconnecting";
  const live = state === "playing";
  el.play.disabled = busy || live || apps.length === 0;
  el.game.disabled = busy || live || apps.length === 0;
  el.end.disabled = !(session && session.sessionId) || state === "ended";
  el.fullscreen.disabled = !live;
  el.messageText.disabled = !live;
  el.messageSend.disabled = !live;
  syncChat(state);
}

// ---- chat (the session's room; the player moderates it) -------------------------------------------

let chatUnavailable = false; // the server runs without chat: no panel, no share button

function syncChat(state) {
  const id = session?.sessionId;
  const show = Boolean(id) && !chatUnavailable && (state === "playing" || state === "reconnecting");
  el.share.disabled = !show;
  el.share.hidden = chatUnavailable;
  if (show) {
    if (el.chat.room !== id) el.chat.room = id;
    el.chat.hidden = false;
  } else if (state !== "starting") {
    el.chat.hidden = true;
    el.chat.room = "";
  }
}

async function share() {
  const id = session?.sessionId;
  if (!id) return;
  try {
    const doc = await api("POST", `/v1/chat/${encodeURIComponent(id)}/invites`);
    el.share.dataset.url = doc.url;
    let copied = false;
    try {
      await navigator.clipboard.writeText(doc.url);
      copied = true;
    } catch {
      copied = false;
    }
    toast(copied ? "Viewer link copied. Anyone with it can watch and chat for 24 h."
      : `Viewer link (valid 24 h): ${doc.url}`, "", 12000);
  } catch (err) {
    toast(`Could not create a viewer link: ${err.message}`, "bad");
  }
}

function selectedApp() {
  return apps.find((a) => a.id === el.game.value) ?? apps[0] ?? null;
}

function appName(id) {
  const a = apps.find((x) => x.id === id || x.arn === id);
  return a ? a.description || a.id : "your game";
}

function saveSession() {
  if (session?.sessionId) localStorage.setItem(STORAGE_KEY, JSON.stringify(session));
}

function forgetSession() {
  localStorage.removeItem(STORAGE_KEY);
  session = null;
}

function storedSession() {
  try {
    const s = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null");
    return s && typeof s.sessionId === "string" ? s : null;
  } catch {
    return null;
  }
}

// ---- SDK lifecycle -------------------------------------------------------------------------------

function closeSdk() {
  clearTimeout(graceTimer);
  if (sdk) {
    const old = sdk;
    sdk = null;
    window.playcast = null;
    old.close();
  }
  tracker.reset();
}

function newSdk() {
  closeSdk();
  const client = new PlaycastStreams({
    videoElement: el.video,
    audioElement: el.audio,
    inputConfiguration: { autoPointerLock: "fullscreen", setCursor: "visibility" },
    clientConnection: {
      connectionState: (state) => client === sdk && onConnectionState(state),
      serverDisconnect: (reason) => client === sdk && sessionEnded(reason),
      channelError: (err) => client === sdk && toast(`Connection problem: ${err?.message ?? err}`, "bad"),
      applicationMessage: (bytes) => client === sdk && logMessage("in", bytes),
      performanceStats: (stats) => {
        lastPerf = stats;
      },
      hostInfo: (info) => client === sdk && !info.gamepadAvailable && gamepadsUnavailable(),
      notice: (n) => {
        if (client !== sdk) return;
        if (n.kind === "gamepadUnavailable") gamepadsUnavailable(n.text);
        else toast(n.text, "warn");
      },
    },
  });
  sdk = client;
  window.playcast = client;
  return client;
}

function gamepadsUnavailable(text = "Gamepads are unavailable on this host") {
  root.dataset.gamepad = "unavailable";
  el.padIndicator.hidden = false;
  el.padIndicator.title = text;
  const pads = navigator.getGamepads ? [...navigator.getGamepads()].filter(Boolean) : [];
  if (pads.length && !gamepadWarned) {
    gamepadWarned = true;
    toast(`${text}. Use the keyboard and mouse.`, "warn");
  }
}

window.addEventListener("gamepadconnected", () => {
  if (root.dataset.gamepad === "unavailable" && !gamepadWarned) {
    gamepadWarned = true;
    toast("Gamepads are unavailable on this host. Use the keyboard and mouse.", "warn");
  }
});

function onConnected(client) {
  if (client !== sdk) return;
  reconnectAttempts = 0;
  client.attachInput();
  setState("playing", { title: "", text: "" });
  el.video.focus({ preventScroll: true });
}

function onConnectionState(state) {
  if (root.dataset.state !== "playing") return;
  if (state === "connected") {
    clearTimeout(graceTimer);
  } else if (state === "disconnected") {
    clearTimeout(graceTimer);
    graceTimer = setTimeout(() => {
      if (sdk && sdk.connectionState !== "connected") reconnect();
    }, DISCONNECT_GRACE_MS);
  } else if (state === "failed") {
    reconnect();
  }
}

function sessionEnded(reason) {
  closeSdk();
  forgetSession();
  const texts = {
    idle: ["Ended after inactivity", "The session was stopped because no input arrived for a long time."],
    terminated: ["Session ended", "The game session was ended."],
    applicationExit: ["The game closed", "The game exited, so the session ended."],
    reconnectionTimeout: ["Session expired", "The session ended because this browser was away too long."],
    connectionTimeout: ["Session expired", "The stream was not opened in time."],
    maxSessionLengthTimeout: ["Time is up", "The session reached its maximum length."],
    apiTerminated: ["Session ended", "The session was ended."],
  };
  const [title, text] = texts[reason] ?? ["Session ended", reason ? `Reason: ${reason}` : "The session ended."];
  setState("ended", { title, text, actions: apps.length ? [action("Play again", () => play(), "primary")] : [] });
}

// ---- start / resume / end ------------------------------------------------------------------------

async function play() {
  const app = selectedApp();
  if (!app) return;
  clearTimeout(reconnectTimer);
  session = { sessionId: null, applicationId: app.id, streamGroupId: app.streamGroupId };
  setState("starting", {
    title: `Starting ${app.description || "the game"}…`,
    text: "Finding a machine and launching the game.",
  });
  const client = newSdk();
  try {
    const signalRequest = await client.generateSignalRequest();
    const started = await api("POST", "/v1/play/sessions", {
      applicationId: app.id, streamGroupId: app.streamGroupId, signalRequest,
    });
    if (client !== sdk) return;
    session.sessionId = started.sessionId;
    session.streamGroupId = started.streamGroupId ?? session.streamGroupId;
    saveSession();
    setState("starting", { title: "Connecting…", text: "The game is running; opening the stream." });
    await client.processSignalResponse(started.signalResponse);
    onConnected(client);
  } catch (err) {
    if (client !== sdk) return;
    closeSdk();
    if (err instanceof ApiError && err.status === 401) return needLogin();
    if (session?.sessionId) {
      reconnect(); // the session runs; only the stream failed: retry through the reconnect endpoint
      return;
    }
    session = null;
    setState("error", {
      error: "start",
      title: "Could not start the game",
      text: err.message || String(err),
      actions: [action("Try again", () => play(), "primary")],
    });
  }
}

async function reconnect() {
  if (!session?.sessionId) return;
  clearTimeout(reconnectTimer);
  reconnectAttempts += 1;
  setState("reconnecting", {
    title: "Reconnecting…",
    text: `Rejoining ${appName(session.applicationId)}. The game kept running.`,
  });
  const id = session.sessionId;
  const client = newSdk();
  try {
    const signalRequest = await client.generateSignalRequest();
    const out = await api("POST", `/v1/play/sessions/${encodeURIComponent(id)}/connection`, { signalRequest });
    if (client !== sdk) return;
    await client.processSignalResponse(out.signalResponse);
    onConnected(client);
  } catch (err) {
    if (client !== sdk) return;
    closeSdk();
    if (err instanceof ApiError && err.status === 401) return needLogin();
    let status = null;
    try {
      status = await api("GET", `/v1/play/sessions/${encodeURIComponent(id)}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) status = { status: "TERMINATED", statusReason: "terminated" };
    }
    if (status && FINAL.has(status.status)) {
      sessionEnded(status.statusReason);
      return;
    }
    if (reconnectAttempts >= MAX_RECONNECT_ATTEMPTS) {
      setState("error", {
        error: "reconnect",
        title: "Connection lost",
        text: `Could not reach the game: ${err.message || err}`,
        actions: [action("Retry", () => {
          reconnectAttempts = 0;
          reconnect();
        }, "primary"), action("End session", () => end())],
      });
      return;
    }
    const delay = Math.min(8000, 500 * 2 ** (reconnectAttempts - 1));
    reconnectTimer = setTimeout(reconnect, delay);
  }
}

async function end() {
  clearTimeout(reconnectTimer);
  const id = session?.sessionId;
  closeSdk();
  forgetSession();
  setState("ended", { title: "You ended the session", text: "Thanks for playing.", actions: [] });
  if (id) {
    try {
      await api("DELETE", `/v1/play/sessions/${encodeURIComponent(id)}`);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) toast(`Ending the session failed: ${err.message}`, "bad");
    }
  }
  setState("ended", {
    title: "You ended the session", text: "Thanks for playing.",
    actions: apps.length ? [action("Play again", () => play(), "primary")] : [],
  });
}

function placeholder(text) {
  const o = document.createElement("option");
  o.textContent = text;
  el.game.replaceChildren(o);
}

function needLogin() {
  closeSdk();
  if (!apps.length) placeholder("Sign in to see the games");
  setState("error", {
    error: "login",
    title: "Sign in to play",
    text: "Open the login link you were given (it looks like …/login?token=…). It signs this browser in.",
  });
}

// ---- boot ----------------------------------------------------------------------------------------

async function loadApps() {
  try {
    const doc = await api("GET", "/v1/play/apps");
    apps = Array.isArray(doc?.applications) ? doc.applications : [];
  } catch (err) {
    apps = [];
    if (err.status === 401) return needLogin();
    placeholder("Games unavailable");
    setState("error", {
      error: "apps",
      title: "Could not load the games",
      text: err.message,
      actions: [action("Retry", () => boot(), "primary")],
    });
    return false;
  }
  el.game.replaceChildren(...apps.map((a) => {
    const o = document.createElement("option");
    o.value = a.id;
    o.textContent = a.description || a.id;
    return o;
  }));
  if (!apps.length) placeholder("No games available");
  return true;
}

async function boot() {
  setState("idle", { title: "Loading…", text: "" });
  if (!(await loadApps())) return;
  if (!apps.length) {
    setState("idle", { title: "No games yet", text: "No game is available on this server yet. Ask the operator to add one." });
    return;
  }
  const stored = storedSession();
  let active = [];
  try {
    active = (await api("GET", "/v1/play/sessions?active=1"))?.sessions ?? [];
  } catch {
    active = [];
  }
  const match = stored && active.find((s) => s.sessionId === stored.sessionId);
  if (match) {
    session = { ...stored, applicationId: match.applicationId ?? stored.applicationId };
    if (apps.some((a) => a.id === session.applicationId)) el.game.value = session.applicationId;
    reconnect();
    return;
  }
  if (stored) localStorage.removeItem(STORAGE_KEY);
  if (active.length) {
    const s = active[0];
    setState("idle", {
      title: "Your game is still running",
      text: `${appName(s.applicationId)} is waiting for you.`,
      actions: [
        action("Resume", () => {
          session = { sessionId: s.sessionId, applicationId: s.applicationId, streamGroupId: s.streamGroupId };
          saveSession();
          reconnectAttempts = 0;
          reconnect();
        }, "primary"),
        action("End it", () => {
          session = { sessionId: s.sessionId, applicationId: s.applicationId, streamGroupId: s.streamGroupId };
          end();
        }),
      ],
    });
    return;
  }
  setState("idle", {
    title: "Pick a game and press Play",
    text: "Your game streams straight into this tab. Keyboard, mouse and gamepads work as if it were running here.",
  });
}

// ---- stats overlay -------------------------------------------------------------------------------

function fmt(v, unit = "", digits = 0) {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : `${Number(v).toFixed(digits)}${unit}`;
}

async function refreshStats() {
  if (!sdk || root.dataset.state !== "playing") return;
  let f;
  try {
    f = tracker.update(await sdk.getVideoRTCStats());
  } catch {
    return;
  }
  const rows = [
    ["Resolution", f.width && f.height ? `${f.width}×${f.height}` : "–"],
    ["Frame rate", fmt(f.fps, " fps", 1)],
    ["Bitrate", f.bitrateKbps === null ? "–" : f.bitrateKbps >= 1000 ? `${(f.bitrateKbps / 1000).toFixed(2)} Mbps` : `${f.bitrateKbps} kbps`],
    ["Round trip", fmt(f.rttMs, " ms", 1)],
    ["Packet loss", fmt(f.packetLossPercent, " %", 2)],
    ["Jitter buffer", fmt(f.jitterBufferDelayMs, " ms", 1)],
    ["Decode", fmt(f.decodeTimeMs, " ms", 2)],
    ["Dropped", fmt(f.framesDropped)],
    ["Codec", f.codec ?? "–"],
  ];
  if (lastPerf?.system) {
    rows.push(["Host CPU", fmt(lastPerf.system.cpuUtilization, " %", 0)]);
    if (lastPerf.system.gpuUtilization !== undefined) rows.push(["Host GPU", fmt(lastPerf.system.gpuUtilization, " %", 0)]);
  }
  el.statsList.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dd.dataset.stat = k;
    return [dt, dd];
  }));
}

function toggleStats() {
  const show = el.stats.hidden;
  el.stats.hidden = !show;
  el.statsToggle.setAttribute("aria-pressed", String(show));
  clearInterval(statsTimer);
  if (show) {
    tracker.reset();
    refreshStats();
    statsTimer = setInterval(refreshStats, 1000);
  }
}

// ---- application messages ------------------------------------------------------------------------

const utf8 = new TextDecoder("utf-8", { fatal: true });

function logMessage(direction, bytes) {
  const li = document.createElement("li");
  li.className = direction;
  let text;
  try {
    text = utf8.decode(bytes);
  } catch {
    text = [...bytes.slice(0, 64)].map((b) => b.toString(16).padStart(2, "0")).join(" ")
      + (bytes.length > 64 ? " …" : "");
  }
  const meta = document.createElement("small");
  meta.textContent = `${direction === "in" ? "game" : "you"} · ${new Date().toLocaleTimeString()} · ${bytes.length} B`;
  li.append(meta, document.createTextNode(text));
  el.messageLog.append(li);
  while (el.messageLog.children.length > 200) el.messageLog.firstElementChild.remove();
  li.scrollIntoView({ block: "nearest" });
}

function toggleMessages(show = el.messages.hidden) {
  el.messages.hidden = !show;
  el.messagesToggle.setAttribute("aria-pressed", String(show));
}

// ---- wiring --------------------------------------------------------------------------------------

el.picker.addEventListener("submit", (e) => {
  e.preventDefault();
  play();
});
el.end.addEventListener("click", () => end());
el.share.addEventListener("click", () => share());
el.chat.addEventListener("chat-state", (e) => {
  if (e.detail.state !== "unavailable") return;
  chatUnavailable = true;
  syncChat(root.dataset.state);
});
el.fullscreen.addEventListener("click", async () => {
  try {
    await el.screen.requestFullscreen({ navigationUI: "hide" });
    await navigator.keyboard?.lock?.();
  } catch (err) {
    toast(`Fullscreen refused: ${err.message}`, "warn");
  }
});
document.addEventListener("fullscreenchange", () => {
  if (!document.fullscreenElement) navigator.keyboard?.unlock?.();
});
el.statsToggle.addEventListener("click", toggleStats);
el.messagesToggle.addEventListener("click", () => toggleMessages());
el.messagesClose.addEventListener("click", () => toggleMessages(false));
el.messageForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = el.messageText.value;
  if (!text || !sdk) return;
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > 65535) {
    toast("Messages are limited to 65535 bytes.", "warn");
    return;
  }
  if (sdk.sendApplicationMessage(bytes)) {
    logMessage("out", bytes);
    el.messageText.value = "";
  } else {
    toast("The message could not be sent (not connected).", "warn");
  }
});
window.addEventListener("pagehide", () => closeSdk()); // the session keeps running and can be resumed

boot();
