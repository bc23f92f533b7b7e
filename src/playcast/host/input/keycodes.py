"""The key table shared with the JS SDK: wire key index <-> KeyboardEvent.code <-> X keysym.

Data only. The order is part of the wire format (docs/input-protocol.md): append, never reorder or remove."""

from __future__ import annotations

# (KeyboardEvent.code, X keysym, keysym name). Wire index = position + 1 (0 is reserved).
# The keysym is what the key produces on a US layout without modifiers; the host resolves it to the
# keycode its X server uses, so shift/altgr state comes from the modifier keys the user holds.
_LETTERS = [(f"Key{c}", ord(c.lower()), c.lower()) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
_DIGITS = [(f"Digit{d}", ord(str(d)), str(d)) for d in range(10)]
_FKEYS = [(f"F{n}", 0xFFBE + n - 1, f"F{n}") for n in range(1, 25)]
_NUMPAD_DIGITS = [(f"Numpad{d}", 0xFFB0 + d, f"KP_{d}") for d in range(10)]

KEY_TABLE: tuple[tuple[str, int, str], ...] = tuple(
    _LETTERS
    + _DIGITS
    + [
        ("Enter", 0xFF0D, "Return"),
        ("Escape", 0xFF1B, "Escape"),
        ("Backspace", 0xFF08, "BackSpace"),
        ("Tab", 0xFF09, "Tab"),
        ("Space", 0x20, "space"),
        ("Minus", 0x2D, "minus"),
        ("Equal", 0x3D, "equal"),
        ("BracketLeft", 0x5B, "bracketleft"),
        ("BracketRight", 0x5D, "bracketright"),
        ("Backslash", 0x5C, "backslash"),
        ("Semicolon", 0x3B, "semicolon"),
        ("Quote", 0x27, "apostrophe"),
        ("Backquote", 0x60, "grave"),
        ("Comma", 0x2C, "comma"),
        ("Period", 0x2E, "period"),
        ("Slash", 0x2F, "slash"),
        ("CapsLock", 0xFFE5, "Caps_Lock"),
    ]
    + _FKEYS
    + [
        ("PrintScreen", 0xFF61, "Print"),
        ("ScrollLock", 0xFF14, "Scroll_Lock"),
        ("Pause", 0xFF13, "Pause"),
        ("Insert", 0xFF63, "Insert"),
        ("Home", 0xFF50, "Home"),
        ("PageUp", 0xFF55, "Prior"),
        ("Delete", 0xFFFF, "Delete"),
        ("End", 0xFF57, "End"),
        ("PageDown", 0xFF56, "Next"),
        ("ArrowRight", 0xFF53, "Right"),
        ("ArrowLeft", 0xFF51, "Left"),
        ("ArrowDown", 0xFF54, "Down"),
        ("ArrowUp", 0xFF52, "Up"),
        ("NumLock", 0xFF7F, "Num_Lock"),
        ("NumpadDivide", 0xFFAF, "KP_Divide"),
        ("NumpadMultiply", 0xFFAA, "KP_Multiply"),
        ("NumpadSubtract", 0xFFAD, "KP_Subtract"),
        ("NumpadAdd", 0xFFAB, "KP_Add"),
        ("NumpadEnter", 0xFF8D, "KP_Enter"),
    ]
    + _NUMPAD_DIGITS
    + [
        ("NumpadDecimal", 0xFFAE, "KP_Decimal"),
        ("NumpadEqual", 0xFFBD, "KP_Equal"),
        ("NumpadComma", 0xFFAC, "KP_Separator"),
        ("IntlBackslash", 0x3C, "less"),
        ("ContextMenu", 0xFF67, "Menu"),
        ("ShiftLeft", 0xFFE1, "Shift_L"),
        ("ShiftRight", 0xFFE2, "Shift_R"),
        ("ControlLeft", 0xFFE3, "Control_L"),
        ("ControlRight", 0xFFE4, "Control_R"),
        ("AltLeft", 0xFFE9, "Alt_L"),
        ("AltRight", 0xFFEA, "Alt_R"),
        ("MetaLeft", 0xFFEB, "Super_L"),
        ("MetaRight", 0xFFEC, "Super_R"),
        ("Convert", 0xFF23, "Henkan_Mode"),
        ("NonConvert", 0xFF22, "Muhenkan"),
        ("KanaMode", 0xFF27, "Hiragana_Katakana"),
        ("Lang1", 0xFF31, "Hangul"),
        ("Lang2", 0xFF34, "Hangul_Hanja"),
        ("Help", 0xFF6A, "Help"),
        ("Undo", 0xFF65, "Undo"),
        ("Again", 0xFF66, "Redo"),
        ("Find", 0xFF68, "Find"),
        ("Select", 0xFF60, "Select"),
        ("Copy", 0x1008FF57, "XF86Copy"),
        ("Cut", 0x1008FF58, "XF86Cut"),
        ("Paste", 0x1008FF6D, "XF86Paste"),
        ("Open", 0x1008FF6B, "XF86Open"),
        ("AudioVolumeMute", 0x1008FF12, "XF86AudioMute"),
        ("AudioVolumeDown", 0x1008FF11, "XF86AudioLowerVolume"),
        ("AudioVolumeUp", 0x1008FF13, "XF86AudioRaiseVolume"),
        ("MediaPlayPause", 0x1008FF14, "XF86AudioPlay"),
        ("MediaStop", 0x1008FF15, "XF86AudioStop"),
        ("MediaTrackPrevious", 0x1008FF16, "XF86AudioPrev"),
        ("MediaTrackNext", 0x1008FF17, "XF86AudioNext"),
        ("BrowserHome", 0x1008FF18, "XF86HomePage"),
        ("BrowserSearch", 0x1008FF1B, "XF86Search"),
        ("BrowserBack", 0x1008FF26, "XF86Back"),
        ("BrowserForward", 0x1008FF27, "XF86Forward"),
        ("BrowserRefresh", 0x1008FF29, "XF86Refresh"),
        ("BrowserFavorites", 0x1008FF30, "XF86Favorites"),
        ("LaunchMail", 0x1008FF19, "XF86Mail"),
        ("LaunchApp1", 0x1008FF33, "XF86MyComputer"),
        ("LaunchApp2", 0x1008FF1D, "XF86Calculator"),
        ("Eject", 0x1008FF2C, "XF86Eject"),
        ("Sleep", 0x1008FF2F, "XF86Sleep"),
        ("Power", 0x1008FF2A, "XF86PowerOff"),
        ("WakeUp", 0x1008FF2B, "XF86WakeUp"),
    ]
)

MAX_KEY_INDEX = len(KEY_TABLE)
_BY_CODE = {code: i + 1 for i, (code, _, _) in enumerate(KEY_TABLE)}
assert len(_BY_CODE) == len(KEY_TABLE), "duplicate KeyboardEvent.code in KEY_TABLE"


def key_index(code: str) -> int:
    """Wire index of a KeyboardEvent.code, 0 when the code is not in the table."""
    return _BY_CODE.get(code, 0)


def key_code(index: int) -> str:
    """KeyboardEvent.code for a wire index. Raises KeyError for 0 or an index past the table."""
    if not 1 <= index <= MAX_KEY_INDEX:
        raise KeyError(index)
    return KEY_TABLE[index - 1][0]


def key_keysym(index: int) -> int:
    """X keysym for a wire index. Raises KeyError for 0 or an index past the table."""
    if not 1 <= index <= MAX_KEY_INDEX:
        raise KeyError(index)
    return KEY_TABLE[index - 1][1]
