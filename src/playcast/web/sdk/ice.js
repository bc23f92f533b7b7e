// Waiting for ICE gathering before sending a non-trickle offer (the SDK; the WHEP player and WHIP publisher too).
// It must not touch the offer itself: it only waits.

/** Resolves when `pc` has gathered its candidates, or after `timeoutMs` with whatever it has. */
export function iceGathered(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}
