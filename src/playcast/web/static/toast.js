// Notices on the player page: a line in the #toasts box that goes away after a while.
// It must not decide what to say or when: player.js, go-live.js and player-camera.js do.

/** Shows `text` ("" | "warn" | "bad" `kind`) for `ms` milliseconds; nothing where the page has no #toasts box. */
export function toast(text, kind = "", ms = 6000) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const t = document.createElement("div");
  t.className = `toast ${kind}`;
  t.textContent = text;
  box.append(t);
  setTimeout(() => t.remove(), ms);
}
