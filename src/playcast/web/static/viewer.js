// The viewer page at /watch/<streamSessionId>: redeems an invitation (?invite=...) into a guest cookie, then
// shows the stream's chat panel. Page glue only: the chat component speaks to the server itself.

import "/static/chat-panel.js";

const $ = (id) => document.getElementById(id);
const root = document.documentElement;
const room = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
const chat = $("chat");

function show(state, title, text = "") {
  root.dataset.state = state;
  $("statusText").textContent = { loading: "Loading", live: "Watching", error: "Error" }[state] ?? state;
  $("cardTitle").textContent = title;
  $("cardText").textContent = text;
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
    show("error", "No stream here", "This address does not name a stream.");
    return;
  }
  $("title").textContent = `Stream ${room}`;
  const invite = new URLSearchParams(location.search).get("invite");
  try {
    if (invite) await redeem(invite);
    const res = await fetch(`/v1/chat/${encodeURIComponent(room)}`, { credentials: "same-origin" });
    if (res.status === 401) {
      show("error", "Ask for an invitation", "Open the share link the player sent you to watch and chat.");
      return;
    }
    if (res.status === 404) {
      show("error", "Stream not found", "This stream does not exist (any more).");
      return;
    }
    if (!res.ok) {
      const doc = await res.json().catch(() => ({}));
      show("error", "Cannot join this stream", doc?.error?.message ?? `HTTP ${res.status}`);
      return;
    }
  } catch (err) {
    show("error", "Cannot join this stream", err.message);
    return;
  }
  show("live", "Chat is live", "The stream's video shows here when it is broadcast.");
  chat.room = room;
}

$("video").addEventListener("playing", () => { root.dataset.video = "playing"; });
$("video").addEventListener("emptied", () => { delete root.dataset.video; });

boot();
