// The viewer page at /watch/<streamSessionId>: redeems an invitation (?invite=...) into a guest cookie, then
// shows the stream's chat panel (viewer-video.js plays the video). Page glue only: the component talks to the server.

import "/static/chat-panel.js";

const $ = (id) => document.getElementById(id);
const root = document.documentElement;
const room = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
const chat = $("chat");

function status(state, text) {
  root.dataset.state = state;
  $("statusText").textContent = text;
}

function lockChat(text) {
  chat.hidden = true;
  $("chatLockedText").textContent = text;
  $("chatLocked").hidden = false;
}

function fatal(title, text) {
  status("error", "Error");
  $("cardTitle").textContent = title;
  $("cardText").textContent = text;
  lockChat(text);
}

async function redeem(invite) {
  const res = await fetch("/v1/chat/invites/redeem", {
    method: "POST", credentials: "same-origin", headers: { "content-type": "application/json" },
    body: JSON.stringify({ invite }),
  });
  const url = new URL(location.href);
  url.searchParams.delete("invite"); // the link is not kept in the address bar or history
  history.replaceState(null, "", url);
  if (!res.ok) {
    const doc = await res.json().catch(() => ({}));
    throw new Error(doc?.error?.message ?? `the invitation was refused (${res.status})`);
  }
}

async function boot() {
  if (!room) {
    fatal("No stream here", "This address does not name a stream.");
    return;
  }
  $("title").textContent = `Stream ${room}`;
  status("loading", "Loading");
  const invite = new URLSearchParams(location.search).get("invite");
  let res;
  try {
    if (invite) await redeem(invite);
    res = await fetch(`/v1/chat/${encodeURIComponent(room)}`, { credentials: "same-origin" });
  } catch (err) {
    status("live", "Watching");
    lockChat(`Chat is unavailable: ${err.message}`);
    return;
  }
  status("live", "Watching");
  if (res.ok) {
    chat.hidden = false;
    chat.room = room;
    return;
  }
  const doc = await res.json().catch(() => ({}));
  if (res.status === 404) fatal("Stream not found", "This stream does not exist (any more).");
  else if (res.status === 401) lockChat("Open the share link the player sent you to chat.");
  else lockChat(doc?.error?.message ?? `Chat is unavailable (HTTP ${res.status}).`);
}

$("video").addEventListener("playing", () => { root.dataset.video = "playing"; });
$("video").addEventListener("emptied", () => { delete root.dataset.video; });

boot();
