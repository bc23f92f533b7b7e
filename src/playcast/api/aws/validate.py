"""Generic input validation against botocore shapes: required, types, lengths, sizes, ranges, enums, patterns.

Reports violations in the AWS style; it never changes the input."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from botocore.model import Shape

MAX_REPORTED = 5


class InputInvalid(Exception):
    def __init__(self, errors: list[str]) -> None:
        n = len(errors)
        shown = errors[:MAX_REPORTED]
        message = f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(shown)
        super().__init__(message)
        self.message = message
        self.errors = errors


@functools.cache
def _pattern(p: str) -> re.Pattern[str]:
    return re.compile(p)


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 64 else text[:61] + "..."


def _path(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


def _null(where: str) -> str:
    return f"Value null at '{where}' failed to satisfy constraint: Member must not be null"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# botocore type -> (what a value of it must be, how that is said)
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "structure": (lambda v: isinstance(v, dict), "an object"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "map": (lambda v: isinstance(v, dict), "a map"),
    "string": (lambda v: isinstance(v, str), "a string"),
    "integer": (_is_int, "an integer"),
    "long": (_is_int, "an integer"),
    "float": (_is_number, "a number"),
    "double": (_is_number, "a number"),
    "boolean": (lambda v: isinstance(v, bool), "a boolean"),
    "timestamp": (lambda v: isinstance(v, int | float | str) and not isinstance(v, bool), "a timestamp"),
}


def _check(shape: Shape, value: Any, where: str, errors: list[str], sensitive: bool = False) -> None:
    meta = shape.metadata
    t = shape.type_name
    kind = _KINDS.get(t)
    if kind is None:
        return
    accepts, what = kind
    if not accepts(value):
        errors.append(f"Value at '{where}' must be {what}")
        return
    shown = "***" if sensitive or meta.get("sensitive") else _show(value)
    at = f"Value '{shown}' at '{where}' failed to satisfy constraint: "
    if t == "structure":
        for req in shape.required_members:
            if value.get(req) is None:
                errors.append(_null(_path(where, req)))
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _check(member, value[name], _path(where, name), errors, sensitive or bool(meta.get("sensitive")))
    elif t == "list":
        _bounds(meta, len(value), at, errors, "length")
        for i, item in enumerate(value, 1):
            if item is None:
                errors.append(_null(f"{where}.{i}"))
            else:
                _check(shape.member, item, f"{where}.{i}.member", errors, sensitive)
    elif t == "map":
        _bounds(meta, len(value), at, errors, "length")
        for k, v in value.items():
            _check(shape.key, k, f"{where}.key", errors, sensitive)
            if v is None:
                errors.append(_null(f"{where}.{k}"))
            else:
                _check(shape.value, v, f"{where}.{k}", errors, sensitive)
    elif t == "string":
        _bounds(meta, len(value), at, errors, "length")
        if shape.enum and value not in shape.enum:
            errors.append(at + f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        pattern = meta.get("pattern")
        # botocore's JSON drops the ^...$ that the service documentation shows: match the whole value
        if pattern and not _pattern(pattern).fullmatch(value):
            errors.append(at + f"Member must satisfy regular expression pattern: {pattern}")
    elif t in ("integer", "long", "float", "double"):
        _bounds(meta, value, at, errors, "value")


def _bounds(meta: dict[str, Any], n: float, at: str, errors: list[str], what: str) -> None:
    """min/max of a length (`what` = "length") or of a number ("value")."""
    if "min" in meta and n < meta["min"]:
        errors.append(at + f"Member must have {what} greater than or equal to {meta['min']}")
    if "max" in meta and n > meta["max"]:
        errors.append(at + f"Member must have {what} less than or equal to {meta['max']}")


def validate(shape: Shape | None, params: dict[str, Any]) -> None:
    """Raise InputInvalid listing every violation of `shape` by `params`."""
    if shape is None:
        return
    errors: list[str] = []
    _check(shape, params, "", errors)
    if errors:
        raise InputInvalid(errors)
