// Captures keyboard, mouse, wheel, touch and gamepad input on a video element and emits protocol messages.
// Knows nothing about WebRTC: every message goes to the `send(bytes)` function it is given.

import { keyIndex } from "./keycodes.js";
import {
  MAX_GAMEPADS, contentRect, encodeGamepadConnection, encodeGamepadState, encodeKey, encodeMouseAbs,
  encodeMouseButton, encodeMouseRel, encodeReset, encodeWheel, gamepadState, normalizePoint, wheelUnits,
} from "./input-encoder.js";

export const DEFAULT_INPUT_CONFIGURATION = Object.freeze({
  autoKeyboard: true,
  autoMouse: true,
  autoGamepad: true,
  resetOnDetach: true,
  trackWindowFocus: true,
  keyboardFilter: null, // (KeyboardEvent) => boolean; false drops the event
  mouseFilter: null, // (MouseEvent | WheelEvent) => boolean; false drops the event
  gamepadFilter: null, // (Gamepad) => {suppressButtonIndexes?: number[]} | null
  hapticFeedback: true, // accepted for compatibility; v1 hosts send no rumble
  setCursor: "visibility", // true | false | 'visibility' | (cssCursor) => void
  autoPointerLock: "fullscreen", // true | false | 'fullscreen'
});

const FAKE_GAMEPAD_INDEX = 100; // GameLift convention: index >= 100 = an app-made gamepad object

function isEditable(target) {
  if (!target || typeof target !== "object" || !("tagName" in target)) return false;
  const tag = target.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable === true;
}

export class InputCapture {
  /**
   * element: the HTMLVideoElement (or any element) showing the stream.
   * send: (Uint8Array) => boolean.
   * config: InputConfiguration (merged with DEFAULT_INPUT_CONFIGURATION).
   */
  constructor({ element, send, config = {}, log = () => {} }) {
    this.element = element;
    this.config = { ...DEFAULT_INPUT_CONFIGURATION, ...config };
    this._send = send;
    this._log = log;
    this._attached = false;
    this._keys = new Set(); // wire key indexes held
    this._buttons = new Set(); // DOM buttons held
    this._pads = new Array(MAX_GAMEPADS).fill(null); // {gamepad, last}
    this._relRest = [0, 0];
    this._touchId = null;
    this._raf = 0;
    this.gamepadStatesEnabled = true; // false once the host says it has no gamepads
    this.remoteCursorVisible = true;
    this._listeners = [];
  }

  get attached() {
    return this._attached;
  }

  get pointerLocked() {
    return typeof document !== "undefined" && document.pointerLockElement === this.element;
  }

  // ---- attach / detach --------------------------------------------------------------------------

  attach() {
    if (this._attached) return;
    this._attached = true;
    const c = this.config;
    const on = (target, type, fn, opts) => {
      target.addEventListener(type, fn, opts);
      this._listeners.push(() => target.removeEventListener(type, fn, opts));
    };
    if (c.autoKeyboard) {
      const key = (e) => {
        const target = (e.composedPath && e.composedPath()[0]) || e.target; // the real target, even in a shadow root
        if (isEditable(target) && target !== this.element) return;
        if (this.processKeyboardEvent(e)) e.preventDefault();
      };
      on(window, "keydown", key, true);
      on(window, "keyup", key, true);
    }
    if (c.autoMouse) {
      const el = this.element;
      on(el, "mousedown", (e) => {
        if (this.processMouseEvent(e)) e.preventDefault();
        this._maybeLockPointer();
      });
      on(window, "mouseup", (e) => {
        if (this._buttons.has(e.button) && this.processMouseEvent(e)) e.preventDefault();
      });
      on(document, "mousemove", (e) => {
        if (this.pointerLocked || this._buttons.size > 0 || el.contains(e.target)) this.processMouseEvent(e);
      });
      on(el, "wheel", (e) => {
        if (this.processMouseEvent(e)) e.preventDefault();
      }, { passive: false });
      on(el, "contextmenu", (e) => e.preventDefault());
      on(el, "touchstart", (e) => this._touch(e), { passive: false });
      on(el, "touchmove", (e) => this._touch(e), { passive: false });
      on(el, "touchend", (e) => this._touch(e), { passive: false });
      on(el, "touchcancel", (e) => this._touch(e), { passive: false });
      on(document, "fullscreenchange", () => {
        if (c.autoPointerLock === "fullscreen" && document.fullscreenElement?.contains(el)) this._lockPointer();
      });
    }
    if (c.trackWindowFocus) {
      on(window, "blur", () => this.releaseAll());
      on(document, "visibilitychange", () => {
        if (document.visibilityState === "hidden") this.releaseAll();
      });
    }
    if (c.autoGamepad && typeof navigator !== "undefined" && navigator.getGamepads) {
      on(window, "gamepadconnected", (e) => this.addGamepad(e.gamepad));
      on(window, "gamepaddisconnected", (e) => this.removeGamepad(e.gamepad));
      for (const gp of navigator.getGamepads()) if (gp) this.addGamepad(gp);
      const tick = () => {
        if (!this._attached) return;
        if (this._pads.some(Boolean)) this.processGamepads();
        this._raf = requestAnimationFrame(tick);
      };
      this._raf = requestAnimationFrame(tick);
    }
    this.setRemoteCursorVisible(this.remoteCursorVisible);
  }

  detach() {
    if (!this._attached) return;
    this._attached = false;
    for (const off of this._listeners.splice(0)) off();
    if (this._raf) cancelAnimationFrame(this._raf);
    this._raf = 0;
    if (this.config.resetOnDetach) this.releaseAll();
    if (this.pointerLocked) document.exitPointerLock();
    if (this.config.setCursor === "visibility" || this.config.setCursor === true) this.element.style.cursor = "";
  }

  /** Release every held key / button / gamepad control locally and on the host (RESET). */
  releaseAll() {
    for (const index of this._keys) this._send(encodeKey(index, false));
    for (const b of this._buttons) this._send(encodeMouseButton(b, false));
    this._keys.clear();
    this._buttons.clear();
    for (const pad of this._pads) if (pad) pad.last = "";
    this._send(encodeReset());
  }

  /** Forget held keys/buttons without sending anything (the connection is gone; the host releases them). */
  forgetHeld() {
    this._keys.clear();
    this._buttons.clear();
    for (const pad of this._pads) if (pad) pad.last = "";
  }

  // ---- keyboard ---------------------------------------------------------------------------------

  processKeyboardEvent(e) {
    const down = e.type === "keydown";
    if (!down && e.type !== "keyup") return false;
    const index = keyIndex(e.code);
    if (!index) return false;
    if (this.config.keyboardFilter && this.config.keyboardFilter(e) === false) return false;
    if (down) {
      if (e.repeat && this._keys.has(index)) return true; // the host's X server repeats held keys itself
      this._keys.add(index);
    } else {
      if (!this._keys.has(index)) return false;
      this._keys.delete(index);
    }
    this._send(encodeKey(index, down));
    return true;
  }

  // ---- mouse ------------------------------------------------------------------------------------

  processMouseEvent(e) {
    if (this.config.mouseFilter && this.config.mouseFilter(e) === false) return false;
    switch (e.type) {
      case "mousemove":
      case "pointermove":
        return this._move(e);
      case "mousedown":
      case "mouseup": {
        if (e.button < 0 || e.button > 4) return false;
        const down = e.type === "mousedown";
        if (!this.pointerLocked) this._move(e);
        if (down) this._buttons.add(e.button);
        else if (!this._buttons.delete(e.button)) return false;
        this._send(encodeMouseButton(e.button, down));
        return true;
      }
      case "wheel": {
        const [dx, dy] = wheelUnits(e.deltaX, e.deltaY, e.deltaMode);
        if (!dx && !dy) return false;
        if (!this.pointerLocked) this._move(e);
        this._send(encodeWheel(dx, dy));
        return true;
      }
      default:
        return false;
    }
  }

  _move(e) {
    if (this.pointerLocked) {
      const fx = (e.movementX ?? 0) + this._relRest[0];
      const fy = (e.movementY ?? 0) + this._relRest[1];
      const dx = Math.trunc(fx);
      const dy = Math.trunc(fy);
      this._relRest = [fx - dx, fy - dy];
      if (!dx && !dy) return false;
      this._send(encodeMouseRel(dx, dy));
      return true;
    }
    const [x, y] = this.normalize(e.clientX, e.clientY);
    this._send(encodeMouseAbs(x, y));
    return true;
  }

  /** Client coordinates -> 0..65535 over the displayed video content (letterbox bars excluded). */
  normalize(clientX, clientY) {
    const el = this.element;
    const rect = el.getBoundingClientRect();
    const fit = typeof getComputedStyle === "function" ? getComputedStyle(el).objectFit : "contain";
    return normalizePoint(clientX, clientY, contentRect(rect, el.videoWidth, el.videoHeight, fit));
  }

  _touch(e) {
    e.preventDefault();
    const touches = [...e.changedTouches];
    if (e.type === "touchstart") {
      if (this._touchId !== null) return;
      const t = touches[0];
      this._touchId = t.identifier;
      const [x, y] = this.normalize(t.clientX, t.clientY);
      this._send(encodeMouseAbs(x, y));
      this._buttons.add(0);
      this._send(encodeMouseButton(0, true));
      return;
    }
    const t = touches.find((touch) => touch.identifier === this._touchId);
    if (!t) return;
    const [x, y] = this.normalize(t.clientX, t.clientY);
    this._send(encodeMouseAbs(x, y));
    if (e.type !== "touchmove") {
      this._touchId = null;
      if (this._buttons.delete(0)) this._send(encodeMouseButton(0, false));
    }
  }

  _maybeLockPointer() {
    const mode = this.config.autoPointerLock;
    if (mode === true || (mode === "fullscreen" && document.fullscreenElement?.contains(this.element))) {
      this._lockPointer();
    }
  }

  _lockPointer() {
    if (this.pointerLocked || !this.element.requestPointerLock) return;
    try {
      const p = this.element.requestPointerLock({ unadjustedMovement: true });
      if (p && typeof p.catch === "function") {
        p.catch(() => {
          const q = this.element.requestPointerLock(); // unadjustedMovement is not supported everywhere
          if (q && typeof q.catch === "function") q.catch((err) => this._log("pointer lock refused", err));
        });
      }
    } catch (err) {
      this._log("pointer lock refused", err);
    }
  }

  /** The host says whether its cursor is visible; apply the setCursor policy to the local cursor. */
  setRemoteCursorVisible(visible) {
    this.remoteCursorVisible = visible;
    const policy = this.config.setCursor;
    const css = visible ? "auto" : "none";
    if (typeof policy === "function") policy(css);
    else if (policy === "visibility" || policy === true) this.element.style.cursor = visible ? "" : "none";
  }

  // ---- gamepads ---------------------------------------------------------------------------------

  addGamepad(gamepad) {
    if (!gamepad || this._slotOf(gamepad) >= 0) return false;
    const slot = this._pads.indexOf(null);
    if (slot < 0) return false;
    this._pads[slot] = { gamepad, last: "" };
    this._send(encodeGamepadConnection(slot, true));
    return true;
  }

  removeGamepad(gamepad) {
    const slot = this._slotOf(gamepad);
    if (slot < 0) return false;
    this._pads[slot] = null;
    this._send(encodeGamepadConnection(slot, false));
    return true;
  }

  /** Send the state of every added gamepad that changed since the last call. */
  processGamepads() {
    const live = typeof navigator !== "undefined" && navigator.getGamepads ? navigator.getGamepads() : [];
    let sent = false;
    for (let slot = 0; slot < MAX_GAMEPADS; slot++) {
      const pad = this._pads[slot];
      if (!pad) continue;
      let gp = pad.gamepad;
      if (gp.index < FAKE_GAMEPAD_INDEX && live[gp.index] && live[gp.index].id === gp.id) gp = live[gp.index];
      const filter = this.config.gamepadFilter ? this.config.gamepadFilter(gp) : null;
      const state = gamepadState(gp, slot, filter?.suppressButtonIndexes ?? []);
      const key = `${state.buttons}|${state.lt}|${state.rt}|${state.axes.join(",")}`;
      if (key === pad.last || !this.gamepadStatesEnabled) continue;
      pad.last = key;
      this._send(encodeGamepadState(state));
      sent = true;
    }
    return sent;
  }

  get gamepadSlots() {
    return this._pads.map((p) => (p ? p.gamepad : null));
  }

  _slotOf(gamepad) {
    return this._pads.findIndex(
      (p) => p && (p.gamepad === gamepad || (gamepad.index < FAKE_GAMEPAD_INDEX && p.gamepad.index === gamepad.index
        && p.gamepad.id === gamepad.id)));
  }
}
