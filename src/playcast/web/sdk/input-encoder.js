// Binary input protocol v1 (docs/input-protocol.md): encode client events, decode host control messages.
// Pure functions on numbers and bytes: no DOM listeners, no WebRTC. Little-endian throughout.

export const PROTOCOL_VERSION = 1;
export const MAX_GAMEPADS = 4;
export const WHEEL_NOTCH = 120;

export const MsgType = Object.freeze({
  HELLO: 0x00,
  KEY_DOWN: 0x01,
  KEY_UP: 0x02,
  MOUSE_MOVE_ABS: 0x03,
  MOUSE_MOVE_REL: 0x04,
  MOUSE_BUTTON_DOWN: 0x05,
  MOUSE_BUTTON_UP: 0x06,
  MOUSE_WHEEL: 0x07,
  GAMEPAD_CONNECT: 0x08,
  GAMEPAD_DISCONNECT: 0x09,
  GAMEPAD_STATE: 0x0a,
  RESET: 0x0b,
  SERVER_DISCONNECT: 0x80,
  HOST_INFO: 0x81,
  NOTICE: 0x82,
  CURSOR: 0x83,
  PERFORMANCE_STATS: 0x84,
});

export const NoticeCode = Object.freeze({ GAMEPAD_UNAVAILABLE: 1, INPUT_ERROR: 2 });
export const HOST_FLAG_GAMEPAD = 0x01;

const clampInt = (v, lo, hi) => Math.max(lo, Math.min(hi, Math.round(v)));
const i16 = (v) => clampInt(v, -32768, 32767);
const u16 = (v) => clampInt(v, 0, 65535);

function message(type, size) {
  const buf = new Uint8Array(size);
  buf[0] = type;
  return [buf, new DataView(buf.buffer)];
}

export function encodeHello(version = PROTOCOL_VERSION) {
  return Uint8Array.of(MsgType.HELLO, version);
}

/** index: wire key index from keycodes.js keyIndex(). */
export function encodeKey(index, down) {
  const [buf, view] = message(down ? MsgType.KEY_DOWN : MsgType.KEY_UP, 3);
  view.setUint16(1, index, true);
  return buf;
}

/** x, y: 0..65535 over the displayed video content. */
export function encodeMouseAbs(x, y) {
  const [buf, view] = message(MsgType.MOUSE_MOVE_ABS, 5);
  view.setUint16(1, u16(x), true);
  view.setUint16(3, u16(y), true);
  return buf;
}

export function encodeMouseRel(dx, dy) {
  const [buf, view] = message(MsgType.MOUSE_MOVE_REL, 5);
  view.setInt16(1, i16(dx), true);
  view.setInt16(3, i16(dy), true);
  return buf;
}

/** button: DOM MouseEvent.button, 0..4. */
export function encodeMouseButton(button, down) {
  return Uint8Array.of(down ? MsgType.MOUSE_BUTTON_DOWN : MsgType.MOUSE_BUTTON_UP, button);
}

/** dx, dy: 1/120 notch units, positive = right / down. */
export function encodeWheel(dx, dy) {
  const [buf, view] = message(MsgType.MOUSE_WHEEL, 5);
  view.setInt16(1, i16(dx), true);
  view.setInt16(3, i16(dy), true);
  return buf;
}

export function encodeGamepadConnection(index, connected) {
  return Uint8Array.of(connected ? MsgType.GAMEPAD_CONNECT : MsgType.GAMEPAD_DISCONNECT, index);
}

/** state: {index, buttons (bitmask of standard buttons 0..16), lt, rt (0..255), axes: [lx, ly, rx, ry] int16}. */
export function encodeGamepadState(state) {
  const [buf, view] = message(MsgType.GAMEPAD_STATE, 16);
  view.setUint8(1, state.index);
  view.setUint32(2, state.buttons >>> 0, true);
  view.setUint8(6, clampInt(state.lt, 0, 255));
  view.setUint8(7, clampInt(state.rt, 0, 255));
  for (let i = 0; i < 4; i++) view.setInt16(8 + 2 * i, clampInt(state.axes[i] ?? 0, -32767, 32767), true);
  return buf;
}

export function encodeReset() {
  return Uint8Array.of(MsgType.RESET);
}

// ---- conversions from DOM values ------------------------------------------------------------------

/** WheelEvent deltas -> [dx, dy] in 1/120 notch units (Chromium: 100 px or 3 lines per notch). */
export function wheelUnits(deltaX, deltaY, deltaMode) {
  const scale = deltaMode === 1 ? 40 : deltaMode === 2 ? 120 : 1.2;
  return [i16(deltaX * scale), i16(deltaY * scale)];
}

/**
 * The rectangle (client coordinates) where the video content is drawn inside `rect` (the element's box),
 * for object-fit: contain (letterbox / pillarbox). Without intrinsic size, the whole box.
 */
export function contentRect(rect, videoWidth, videoHeight, objectFit = "contain") {
  if (!videoWidth || !videoHeight || !rect.width || !rect.height || objectFit === "fill") {
    return { left: rect.left, top: rect.top, width: rect.width, height: rect.height };
  }
  const scale = objectFit === "cover"
    ? Math.max(rect.width / videoWidth, rect.height / videoHeight)
    : Math.min(rect.width / videoWidth, rect.height / videoHeight);
  const width = videoWidth * scale;
  const height = videoHeight * scale;
  return { left: rect.left + (rect.width - width) / 2, top: rect.top + (rect.height - height) / 2, width, height };
}

/** Client coordinates -> [x, y] in 0..65535 over `content` (clamped to the content). */
export function normalizePoint(clientX, clientY, content) {
  const fx = content.width > 0 ? (clientX - content.left) / content.width : 0;
  const fy = content.height > 0 ? (clientY - content.top) / content.height : 0;
  return [u16(Math.min(1, Math.max(0, fx)) * 65535), u16(Math.min(1, Math.max(0, fy)) * 65535)];
}

/**
 * A Gamepad (or a plain object shaped like one) -> wire state for `slot`.
 * suppress: standard button indexes to report as released (gamepadFilter's suppressButtonIndexes).
 */
export function gamepadState(gamepad, slot, suppress = []) {
  const skip = new Set(suppress);
  let buttons = 0;
  const list = gamepad.buttons ?? [];
  for (let i = 0; i < 17 && i < list.length; i++) {
    const b = list[i];
    if (!b || skip.has(i)) continue;
    const pressed = typeof b === "number" ? b > 0.5 : b.pressed || (b.value ?? 0) > 0.5;
    if (pressed) buttons |= 1 << i;
  }
  const value = (i) => {
    const b = list[i];
    if (!b || skip.has(i)) return 0;
    return typeof b === "number" ? b : b.value ?? (b.pressed ? 1 : 0);
  };
  const axes = [0, 1, 2, 3].map((i) => clampInt((gamepad.axes?.[i] ?? 0) * 32767, -32767, 32767));
  return { index: slot, buttons: buttons >>> 0, lt: clampInt(value(6) * 255, 0, 255), rt: clampInt(value(7) * 255, 0, 255), axes };
}

// ---- host -> client -------------------------------------------------------------------------------

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decode one host -> client message. Returns an object with `type` in
 * serverDisconnect | hostInfo | notice | cursor | performanceStats, or {type: "invalid", error} for bad bytes.
 */
export function decodeControl(data) {
  const buf = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (buf.length === 0) return { type: "invalid", error: "empty control message" };
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  try {
    switch (buf[0]) {
      case MsgType.SERVER_DISCONNECT:
        if (buf.length >= 2 && buf.length === 2 + buf[1]) {
          return { type: "serverDisconnect", reason: utf8.decode(buf.subarray(2)) };
        }
        break;
      case MsgType.HOST_INFO:
        if (buf.length === 3) {
          return { type: "hostInfo", version: buf[1], gamepadAvailable: Boolean(buf[2] & HOST_FLAG_GAMEPAD) };
        }
        break;
      case MsgType.NOTICE:
        if (buf.length >= 4 && buf.length === 4 + view.getUint16(2, true)) {
          return { type: "notice", code: buf[1], text: utf8.decode(buf.subarray(4)) };
        }
        break;
      case MsgType.CURSOR:
        if (buf.length === 2) return { type: "cursor", visible: buf[1] !== 0 };
        break;
      case MsgType.PERFORMANCE_STATS: {
        const stats = JSON.parse(utf8.decode(buf.subarray(1)));
        if (stats && typeof stats === "object" && !Array.isArray(stats)) return { type: "performanceStats", stats };
        break;
      }
      default:
        return { type: "invalid", error: `unknown control message type 0x${buf[0].toString(16)}` };
    }
  } catch (e) {
    return { type: "invalid", error: `bad control message 0x${buf[0].toString(16)}: ${e.message}` };
  }
  return { type: "invalid", error: `malformed control message 0x${buf[0].toString(16)} (${buf.length} bytes)` };
}
