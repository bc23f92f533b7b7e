"""Shapes responses by the botocore output model: drops None and unknown members, timestamps as epoch seconds.

Output formatting only; it never reads the database."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from botocore.model import Shape

log = logging.getLogger(__name__)

# Members playcast adds to AWS's output structures. Stock SDKs ignore members they do not model, so these only
# reach clients that read the JSON themselves (the console, curl). StatusMessage: a StatusReason in words.
EXTENSION_MEMBERS = frozenset({"StatusMessage"})


def shape_output(shape: Shape | None, value: Any) -> Any:
    if shape is None or value is None:
        return None
    t = shape.type_name
    if t == "structure":
        out = {}
        for name, v in value.items():
            member = shape.members.get(name)
            if member is None and name in EXTENSION_MEMBERS and "StatusReason" in shape.members:
                if isinstance(v, str) and v:
                    out[name] = v
                continue
            if member is None:
                log.debug("dropping %s: not a member of %s", name, shape.name)
                continue
            if member.serialization.get("location"):  # header/uri bound outputs are not in the body
                continue
            shaped = shape_output(member, v)
            if shaped is not None:
                out[name] = shaped
        return out
    if t == "list":
        return [shape_output(shape.member, v) for v in value]
    if t == "map":
        return {k: shape_output(shape.value, v) for k, v in value.items()}
    if t == "timestamp":
        if isinstance(value, dt.datetime):
            return value.timestamp()
        return float(value)
    return value
