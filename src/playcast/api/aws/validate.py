"""Generic input validation against botocore shapes: required, types, lengths, sizes, ranges, enums, patterns.

Reports violations in the AWS style; it never changes the input."""

from __future__ import annotations

import functools
import re
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


def _check(shape: Shape, value: Any, where: str, errors: list[str], sensitive: bool = False) -> None:
    meta = shape.metadata
    t = shape.type_name
    shown = "***" if sensitive or meta.get("sensitive") else _show(value)
    at = f"Value '{shown}' at '{where}' failed to satisfy constraint: "
    if t == "structure":
        if not isinstance(value, dict):
            errors.append(f"Value at '{where}' must be an object")
            return
        for req in shape.required_members:
            if value.get(req) is None:
                errors.append(f"Value null at '{_path(where, req)}' failed to satisfy constraint: "
                              "Member must not be null")
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _check(member, value[name], _path(where, name), errors, sensitive or bool(meta.get("sensitive")))
        return
    if t == "list":
        if not isinstance(value, list):
            errors.append(f"Value at '{where}' must be a list")
            return
        _size(meta, len(value), at, errors, "length")
        for i, item in enumerate(value):
            if item is None:
                errors.append(f"Value null at '{where}.{i + 1}' failed to satisfy constraint: Member must not be null")
            else:
                _check(shape.member, item, f"{where}.{i + 1}.member", errors, sensitive)
        return
    if t == "map":
        if not isinstance(value, dict):
            errors.append(f"Value at '{where}' must be a map")
            return
        _size(meta, len(value), at, errors, "length")
        for k, v in value.items():
            _check(shape.key, k, f"{where}.key", errors, sensitive)
            if v is None:
                errors.append(f"Value null at '{where}.{k}' failed to satisfy constraint: Member must not be null")
            else:
                _check(shape.value, v, f"{where}.{k}", errors, sensitive)
        return
    if t == "string":
        if not isinstance(value, str):
            errors.append(f"Value at '{where}' must be a string")
            return
        _size(meta, len(value), at, errors, "length")
        if shape.enum and value not in shape.enum:
            errors.append(at + f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        pattern = meta.get("pattern")
        # botocore's JSON drops the ^...$ that the service documentation shows: match the whole value
        if pattern and not _pattern(pattern).fullmatch(value):
            errors.append(at + f"Member must satisfy regular expression pattern: {pattern}")
        return
    if t in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"Value at '{where}' must be an integer")
            return
        _range(meta, value, at, errors)
        return
    if t in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"Value at '{where}' must be a number")
            return
        _range(meta, value, at, errors)
        return
    if t == "boolean":
        if not isinstance(value, bool):
            errors.append(f"Value at '{where}' must be a boolean")
        return
    if t == "timestamp":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            errors.append(f"Value at '{where}' must be a timestamp")
        return


def _size(meta: dict[str, Any], n: int, at: str, errors: list[str], what: str) -> None:
    if "min" in meta and n < meta["min"]:
        errors.append(at + f"Member must have {what} greater than or equal to {meta['min']}")
    if "max" in meta and n > meta["max"]:
        errors.append(at + f"Member must have {what} less than or equal to {meta['max']}")


def _range(meta: dict[str, Any], n: float, at: str, errors: list[str]) -> None:
    if "min" in meta and n < meta["min"]:
        errors.append(at + f"Member must have value greater than or equal to {meta['min']}")
    if "max" in meta and n > meta["max"]:
        errors.append(at + f"Member must have value less than or equal to {meta['max']}")


def validate(shape: Shape | None, params: dict[str, Any]) -> None:
    """Raise InputInvalid listing every violation of `shape` by `params`."""
    if shape is None:
        return
    errors: list[str] = []
    _check(shape, params, "", errors)
    if errors:
        raise InputInvalid(errors)
