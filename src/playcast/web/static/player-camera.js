// The player page's "Camera" button: while the session is live (go-live.js sets html[data-live]), publish the
// player's webcam + microphone into the broadcast's stage over WHIP; viewers see it next to the gameplay.
// Self-contained: adds its button after "Go live", asks the broadcast API for the publish token, never touches the game stream.

import { toast } from "/static/toast.js";
import { WhipPublisher } from "/static/whip-publisher.js";

const root = document.documentElement;
const goLive = document.getElementById("goLive");
let publisher = null;
let broadcastId = "";

const button = document.createElement("button");
button.className = "btn ghost";
button.id = "camera";
button.type = "button";
button.title = "Show your camera to viewers (WHIP)";
button.disabled = true;
button.setAttribute("aria-pressed", "false");
button.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M3 7h12v10H3zM15 10l6-3v10l-6-3"/></svg><span>Camera</span>';
const label = button.querySelector("span");

const NOTICE_MS = 12000;
const notify = (text, kind = "") => toast(text, kind, NOTICE_MS);

function render(state = publisher ? button.dataset.state : "off") {
  button.dataset.state = state;
  button.disabled = !root.dataset.live && !publisher;
  button.classList.toggle("live", state === "live");
  button.setAttribute("aria-pressed", String(Boolean(publisher)));
  label.textContent = { live: "Camera on", connecting: "Camera…", retrying: "Camera…" }[state] ?? "Camera";
}

async function stop() {
  const p = publisher;
  publisher = null;
  if (p) await p.stop();
  render("off");
}

async function start() {
  const id = root.dataset.live;
  const res = await fetch(`/v1/broadcasts/${encodeURIComponent(id)}`, { credentials: "same-origin" });
  if (!res.ok) throw new Error(`broadcast ${res.status}`);
  const b = await res.json();
  broadcastId = id;
  publisher = new WhipPublisher(b.whipIngestUrl, {
    token: b.publishToken,
    onState: (state, detail) => {
      if (state === "error") {
        notify(`Camera failed: ${detail}`, "bad");
        stop();
        return;
      }
      render(state);
    },
  });
  await publisher.start();
}

if (goLive) {
  goLive.after(button);
  button.addEventListener("click", async () => {
    try {
      if (publisher) await stop();
      else await start();
    } catch (err) {
      notify(`Camera failed: ${err.message}`, "bad");
      await stop();
    }
  });
  new MutationObserver(() => {
    if (publisher && root.dataset.live !== broadcastId) stop(); // the broadcast ended: so does the camera
    render();
  }).observe(root, { attributes: true, attributeFilter: ["data-live"] });
  render("off");
}
