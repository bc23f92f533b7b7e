// The player page's "Go live" button: broadcast the running session (POST /v1/broadcasts), copy the viewer link,
// and end the broadcast on a second press. Self-contained: it reads the page state (html[data-state]) and the
// session the page keeps in localStorage ("playcast.session"); it never touches the stream itself.

import { toast } from "/static/toast.js";

const button = document.getElementById("goLive");
const label = button?.querySelector("span");
const root = document.documentElement;
let broadcast = null;

function sessionId() {
  try {
    return JSON.parse(localStorage.getItem("playcast.session") ?? "null")?.sessionId ?? null;
  } catch {
    return null;
  }
}

const NOTICE_MS = 12000;
const notify = (text, kind = "") => toast(text, kind, NOTICE_MS);

async function call(method, path, body) {
  const res = await fetch(path, {
    method, credentials: "same-origin",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const doc = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) throw new Error(doc?.error?.message ?? `HTTP ${res.status}`);
  return doc;
}

function render() {
  if (!button) return;
  const playing = root.dataset.state === "playing" || root.dataset.state === "reconnecting";
  button.disabled = !playing && !broadcast;
  button.classList.toggle("live", Boolean(broadcast));
  button.setAttribute("aria-pressed", String(Boolean(broadcast)));
  if (label) label.textContent = broadcast ? "Live · end" : "Go live";
  root.dataset.live = broadcast ? broadcast.broadcastId : "";
}

async function viewerLink(b) {
  // With chat on this server, the link also carries a chat invitation so viewers can talk too.
  try {
    const invite = await call("POST", `/v1/chat/${encodeURIComponent(b.streamSessionId)}/invites`);
    const url = new URL(invite.url, location.href);
    url.searchParams.set("broadcast", b.broadcastId);
    if (b.private) url.searchParams.set("token", b.viewerToken);
    return url.toString();
  } catch {
    return b.viewerPageUrl;
  }
}

async function toggle() {
  const id = sessionId();
  try {
    if (broadcast) {
      await call("DELETE", `/v1/broadcasts/${encodeURIComponent(broadcast.broadcastId)}`);
      broadcast = null;
      notify("The broadcast has ended.");
    } else if (id) {
      broadcast = await call("POST", "/v1/broadcasts", { streamSessionId: id });
      const link = await viewerLink(broadcast);
      broadcast.viewerLink = link;
      button.dataset.url = link;
      let copied = false;
      try {
        await navigator.clipboard.writeText(link);
        copied = true;
      } catch {
        copied = false;
      }
      notify(copied ? "You are live. The viewer link is copied." : `You are live. Viewer link: ${link}`);
    }
  } catch (err) {
    notify(`Go live failed: ${err.message}`, "bad");
  }
  render();
}

if (button) {
  button.addEventListener("click", toggle);
  new MutationObserver(() => {
    if (root.dataset.state === "ended" || root.dataset.state === "idle") broadcast = null; // ends with the session
    render();
  }).observe(root, { attributes: true, attributeFilter: ["data-state"] });
  render();
}
