"""The one way to parse JSON that came from outside: size and nesting depth are checked before json.loads runs.

Parsing only: it raises JsonInputError (a ValueError), and each caller turns that into its own service's error."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

DEFAULT_MAX_BYTES = 1 << 20
MAX_DEPTH = 64

# a JSON string literal (unrolled, so linear time); its brackets do not nest anything
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # \ud800-\udfff: one half of a UTF-16 pair, or a lone one


class JsonInputError(ValueError):
    """The input is too large, nested too deeply, not text, not JSON, or names a lone surrogate (no character: no
    UTF-8 can store or echo it); the message says which (callers prefix what the input was: "body is not valid
    JSON: nested deeper than 64 levels")."""


def nesting_depth(text: str) -> int:
    """How deeply `text`'s arrays and objects nest (brackets inside string literals do not count).

    Iterative and at C speed (regex and itertools); on invalid JSON it may count too high, never too low."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def parse_json(data: str | bytes | bytearray, *, max_bytes: int = DEFAULT_MAX_BYTES,
               max_depth: int = MAX_DEPTH) -> Any:
    """`data` (text, or bytes in any encoding json.loads detects) as a Python value. Raises JsonInputError."""
    if len(data) > max_bytes:
        raise JsonInputError(f"larger than {max_bytes} bytes")
    if isinstance(data, (bytes, bytearray)):
        try:
            text = bytes(data).decode(json.detect_encoding(data))
        except UnicodeDecodeError as exc:
            raise JsonInputError(f"not UTF-8, UTF-16 or UTF-32 text ({exc.reason})") from None
    else:
        text = data
        if not text.isascii():
            try:
                size = len(text.encode("utf-8"))
            except UnicodeEncodeError:
                raise JsonInputError("not valid Unicode text: it holds a lone surrogate") from None
            if size > max_bytes:
                raise JsonInputError(f"larger than {max_bytes} bytes")
    # one bracket per level at least: a document with few brackets cannot be deep, and skips the walk
    if text.count("[") + text.count("{") > max_depth and nesting_depth(text) > max_depth:
        raise JsonInputError(f"nested deeper than {max_depth} levels")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonInputError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits
        raise JsonInputError(str(exc)) from None
    if _SURROGATE_ESCAPE.search(text) and not _is_unicode(value):
        raise JsonInputError("a \\u escape names a lone surrogate (\\ud800-\\udfff), which is not a character")
    return value


def _is_unicode(value: Any) -> bool:
    """False when a string in `value` holds a lone surrogate (the escapes of a valid pair decode to one character)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
