// The viewer page's live video: WHEP (sub-second) first, LL-HLS (hls.js) as the fallback, live/offline state and
// the viewer count. Reads ?broadcast=<id>[&token=<viewerToken>][&mode=hls] from the page address.
// Page glue only: WhepPlayer speaks WHEP, hls.js speaks HLS, the server says what is live.

import { WhepPlayer } from "/static/whep-player.js";

const params = new URLSearchParams(location.search);
const broadcastId = params.get("broadcast");
const token = params.get("token");
const forceHls = params.get("mode") === "hls";
const video = document.getElementById("video");
const root = document.documentElement;
const WHEP_ATTEMPTS_BEFORE_HLS = 3;

function badge() {
  let el = document.getElementById("liveBadge");
  if (!el) {
    el = document.createElement("div");
    el.id = "liveBadge";
    el.className = "live-badge";
    el.setAttribute("role", "status");
    (document.getElementById("screen") ?? document.body).appendChild(el);
  }
  return el;
}

function setVideoState(state, viewers) {
  root.dataset.broadcast = state; // live | waiting | offline | error
  const el = badge();
  el.dataset.state = state;
  const who = typeof viewers === "number" ? ` · ${viewers} watching` : "";
  el.textContent = { live: "● LIVE", waiting: "Waiting for the stream…", offline: "Offline", error: "Video error" }[
    state] + (state === "live" ? who : "");
}

async function status() {
  const url = `/v1/broadcasts/${encodeURIComponent(broadcastId)}/status` + (token ? `?token=${encodeURIComponent(token)}` : "");
  const res = await fetch(url);
  if (!res.ok) return { status: res.status === 404 ? "ENDED" : "ERROR" };
  return res.json();
}

let whep = null;
let hls = null;
let whepFailures = 0;

async function loadHlsJs() {
  if (window.Hls) return window.Hls;
  await new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = "/static/vendor/hls.js";
    s.onload = resolve;
    s.onerror = () => reject(new Error("hls.js is not available"));
    document.head.appendChild(s);
  });
  return window.Hls;
}

// A private broadcast's HLS URL with the viewer token: the playlists then carry it into every URL they list.
function withToken(url) {
  if (!token) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}

async function playHls(url) {
  url = withToken(url);
  root.dataset.transport = "hls";
  if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url; // Safari plays LL-HLS natively
    return;
  }
  const Hls = await loadHlsJs();
  hls = new Hls({ lowLatencyMode: true, liveSyncDurationCount: 1, maxLiveSyncPlaybackRate: 1.5 });
  hls.loadSource(url);
  hls.attachMedia(video);
  hls.on(Hls.Events.ERROR, (_, data) => {
    if (data.fatal) setVideoState("error");
  });
}

function playWhep(url) {
  root.dataset.transport = "whep";
  whep = new WhepPlayer(video, url, {
    token,
    onState: (s) => {
      if (s === "live") whepFailures = 0;
      if (s === "error") {
        whepFailures += 1;
        if (whepFailures >= WHEP_ATTEMPTS_BEFORE_HLS && current?.hlsUrl) {
          whep.stop();
          whep = null;
          playHls(current.hlsUrl);
        }
      }
    },
  });
  whep.start().catch(() => {});
}

let current = null;

async function playVod(url) {
  // The recording, seekable, from the start: a live hls.js (if any) is replaced.
  hls?.destroy();
  hls = null;
  root.dataset.transport = "vod";
  root.dataset.broadcast = "vod";
  video.srcObject = null; // the live WebRTC stream is over
  const el = badge();
  el.dataset.state = "vod";
  el.textContent = "Recording";
  const src = withToken(url);
  video.controls = true;
  if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = src;
    return;
  }
  const Hls = await loadHlsJs();
  hls = new Hls();
  hls.loadSource(src);
  hls.attachMedia(video);
}

async function tick() {
  let s;
  try {
    s = await status();
  } catch {
    s = { status: "ERROR" };
  }
  if (s.status === "LIVE") {
    current = s;
    if (root.dataset.transport !== "vod") setVideoState(video.readyState >= 2 ? "live" : "waiting", s.viewerCount);
    if (!whep && !hls) {
      if (forceHls) playHls(s.hlsUrl);
      else playWhep(s.whepUrl);
    }
  } else if (s.status === "ENDED") {
    whep?.stop();
    whep = null;
    if (s.recording?.vodUrl && s.recording.status === "ENDED") {
      if (root.dataset.transport !== "vod") playVod(s.recording.vodUrl);
    } else {
      setVideoState("offline");
    }
  } else {
    setVideoState("error");
  }
}

if (broadcastId) {
  setVideoState("waiting");
  video.addEventListener("playing", () => {
    if (root.dataset.transport !== "vod") setVideoState("live", current?.viewerCount);
  });
  tick();
  setInterval(tick, 3000);
} else {
  setVideoState("offline");
}
