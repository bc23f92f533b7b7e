// Key table of the input protocol: wire key index = position in KEY_CODES + 1 (0 is never sent).
// Data only; must equal src/playcast/host/input/keycodes.py KEY_TABLE (a test checks). Append only, never reorder.

export const KEY_CODES = Object.freeze([
  "KeyA", "KeyB", "KeyC", "KeyD", "KeyE", "KeyF", "KeyG", "KeyH", "KeyI", "KeyJ", "KeyK", "KeyL", "KeyM",
  "KeyN", "KeyO", "KeyP", "KeyQ", "KeyR", "KeyS", "KeyT", "KeyU", "KeyV", "KeyW", "KeyX", "KeyY", "KeyZ",
  "Digit0", "Digit1", "Digit2", "Digit3", "Digit4", "Digit5", "Digit6", "Digit7", "Digit8", "Digit9",
  "Enter", "Escape", "Backspace", "Tab", "Space", "Minus", "Equal", "BracketLeft", "BracketRight",
  "Backslash", "Semicolon", "Quote", "Backquote", "Comma", "Period", "Slash", "CapsLock", "F1", "F2", "F3",
  "F4", "F5", "F6", "F7", "F8", "F9", "F10", "F11", "F12", "F13", "F14", "F15", "F16", "F17", "F18", "F19",
  "F20", "F21", "F22", "F23", "F24", "PrintScreen", "ScrollLock", "Pause", "Insert", "Home", "PageUp",
  "Delete", "End", "PageDown", "ArrowRight", "ArrowLeft", "ArrowDown", "ArrowUp", "NumLock", "NumpadDivide",
  "NumpadMultiply", "NumpadSubtract", "NumpadAdd", "NumpadEnter", "Numpad0", "Numpad1", "Numpad2", "Numpad3",
  "Numpad4", "Numpad5", "Numpad6", "Numpad7", "Numpad8", "Numpad9", "NumpadDecimal", "NumpadEqual",
  "NumpadComma", "IntlBackslash", "ContextMenu", "ShiftLeft", "ShiftRight", "ControlLeft", "ControlRight",
  "AltLeft", "AltRight", "MetaLeft", "MetaRight", "Convert", "NonConvert", "KanaMode", "Lang1", "Lang2",
  "Help", "Undo", "Again", "Find", "Select", "Copy", "Cut", "Paste", "Open", "AudioVolumeMute",
  "AudioVolumeDown", "AudioVolumeUp", "MediaPlayPause", "MediaStop", "MediaTrackPrevious", "MediaTrackNext",
  "BrowserHome", "BrowserSearch", "BrowserBack", "BrowserForward", "BrowserRefresh", "BrowserFavorites",
  "LaunchMail", "LaunchApp1", "LaunchApp2", "Eject", "Sleep", "Power", "WakeUp",
]);

const BY_CODE = new Map(KEY_CODES.map((code, i) => [code, i + 1]));

/** Wire index for a KeyboardEvent.code, or 0 when the key is not in the table. */
export function keyIndex(code) {
  return BY_CODE.get(code) ?? 0;
}
