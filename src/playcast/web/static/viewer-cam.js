// The viewer page's webcam: when the broadcast's stage has a publisher (WHIP ingest), its picture appears in a
// corner next to the gameplay, played over WHEP from /whep/<broadcast>/cam; it hides when the publisher leaves.
// Reads ?broadcast=<id>[&token=<viewerToken>] like viewer-video.js; page glue only (WhepPlayer does the WHEP).

import { WhepPlayer } from "/static/whep-player.js";

const params = new URLSearchParams(location.search);
const broadcastId = params.get("broadcast");
const token = params.get("token");
const screen = document.getElementById("screen");

if (broadcastId && screen) {
  const box = document.createElement("figure");
  box.className = "cam";
  box.id = "camBox";
  box.hidden = true;
  const cam = document.createElement("video");
  cam.id = "cam";
  Object.assign(cam, { autoplay: true, muted: true, playsInline: true, disablePictureInPicture: true });
  const caption = document.createElement("figcaption");
  caption.textContent = "Camera";
  box.append(cam, caption);
  screen.appendChild(box);

  const show = (on) => {
    box.hidden = !on;
    document.documentElement.dataset.cam = on ? "live" : "off";
  };
  cam.addEventListener("playing", () => show(true));
  const url = new URL(`/whep/${encodeURIComponent(broadcastId)}/cam`, location.href).toString();
  const player = new WhepPlayer(cam, url, {
    token,
    retryMs: 3000,
    onState: (state) => {
      box.dataset.whep = state;
      if (state !== "live") show(false); // waiting (nothing published), connecting, ended, error
      if (state === "ended") player.stop(); // the broadcast is over: stop asking
    },
  });
  window.playcastCam = player; // for stats and tests
  show(false);
  player.start().catch((err) => {
    box.dataset.error = String(err);
  });
}
