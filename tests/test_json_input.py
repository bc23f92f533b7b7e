"""json_input.parse_json, the one parser of JSON from outside: its size and depth limits, that nothing but
JsonInputError (a ValueError) leaves it, and an `ast` walk of src/playcast so no other parse can creep in."""

from __future__ import annotations

import ast
import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playcast.api.chat import _parse_page_token
from playcast.control.signal import BadSignal
from playcast.control.signal import parse_offer as parse_signal
from playcast.demo.feed import describe
from playcast.events.chat.shapes import from_game
from playcast.events.protocol import (
    ProtocolError,
    check_event,
    decode_auth_subprotocols,
    parse_client_message,
)
from playcast.host.input.protocol import InputProtocolError, MsgType, decode_control
from playcast.json_input import MAX_DEPTH, JsonInputError, nesting_depth, parse_json
from playcast.media.peer import OfferError
from playcast.media.peer import parse_offer as parse_peer_offer
from playcast.store.queries import BadPageToken, _decode_token

SRC = Path(__file__).resolve().parents[1] / "src" / "playcast"
THE_PARSER = SRC / "json_input.py"


def _nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


@pytest.mark.parametrize("doc", ["[" * 100_000, '{"a":' * 100_000, "[" * 1_000_000, _nested(5000),
                                 '[{"a":' * 3000 + "1" + "}]" * 3000])
def test_deep_documents_are_refused_without_recursion(doc: str) -> None:
    with pytest.raises(JsonInputError, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_json(doc, max_bytes=len(doc))
    with pytest.raises(ValueError):  # what every caller's `except ValueError` already catches
        parse_json(doc.encode(), max_bytes=len(doc))


def test_depth_limit_is_exact_and_strings_do_not_count() -> None:
    assert parse_json(_nested(MAX_DEPTH)) is not None
    with pytest.raises(JsonInputError):
        parse_json(_nested(MAX_DEPTH + 1))
    assert parse_json(_nested(3, "[", "]"), max_depth=3) == [[[]]]
    with pytest.raises(JsonInputError):
        parse_json(_nested(4), max_depth=3)
    in_strings = json.dumps({"text": "[" * 10_000 + "{" * 10_000, "escaped": '\\"[[[[' * 1000})
    assert parse_json(in_strings)["text"].startswith("[[[")
    assert nesting_depth(in_strings) == 1
    assert nesting_depth('[1, {"a": [2, "]]]"]}, []]') == 3


def test_size_is_counted_in_bytes() -> None:
    assert parse_json('"' + "x" * 98 + '"', max_bytes=100) == "x" * 98
    with pytest.raises(JsonInputError, match="larger than 100 bytes"):
        parse_json('"' + "x" * 99 + '"', max_bytes=100)
    with pytest.raises(JsonInputError, match="larger than 100 bytes"):
        parse_json('"' + "é" * 60 + '"', max_bytes=100)  # 62 characters, 122 bytes in UTF-8
    with pytest.raises(JsonInputError, match="larger than"):
        parse_json(b"[" + b"1," * 600_000 + b"1]")  # the default limit is 1 MiB


def test_bytes_in_any_json_encoding_and_bad_input() -> None:
    assert parse_json('{"a": [1, "ü"]}'.encode("utf-16")) == {"a": [1, "ü"]}
    assert parse_json(bytearray(b"[true]")) == [True]
    for bad, why in [(b"\xff\xfe\xfe", "text"), (b"{nope", "Expecting"), ("", "Expecting"),
                     ("1" * 5000, "4300 digits"), ('{"a": 1} x', "Extra data")]:
        with pytest.raises(JsonInputError, match=why):
            parse_json(bad)


def test_lone_surrogates_are_refused_and_pairs_kept() -> None:
    """A \\ud800 escape (or such a character in text) parses to a string no UTF-8 can hold: storing or echoing it
    raised UnicodeEncodeError (500s in the GameLift and /v1 APIs, a dropped events socket)."""
    for bad in ('{"a": "\\ud800"}', '["x\\udfffy"]', b'"\\uDBFF"', '"\ud800"', '["\\ud83d\\u0041"]'):
        with pytest.raises(JsonInputError, match="lone surrogate"):
            parse_json(bad)
    assert parse_json('["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001f600", "\\ud800"]  # a pair; an escaped backslash


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                     max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_any_shallow_document_parses_as_json_loads_does(value: object) -> None:
    text = json.dumps(value)
    assert parse_json(text) == json.loads(text)
    assert nesting_depth(text) <= MAX_DEPTH


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='[]{}",:\\ 0a' , max_size=400) | st.binary(max_size=200))
def test_nothing_but_json_input_error_leaves_the_parser(data: str | bytes) -> None:
    try:
        parse_json(data, max_depth=8)
    except JsonInputError:
        pass


NESTED = "[" * 100_000


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


REFUSALS: list[tuple[str, Callable[[], object], Callable[[object], bool] | type[Exception]]] = [
    # (parser, a call with nested input, what it must do: raise that error, or return what the check accepts)
    ("SignalRequest", lambda: parse_signal(NESTED, allow_no_client=True), BadSignal),
    ("host offer", lambda: parse_peer_offer(NESTED[:60_000]), OfferError),
    ("input channel stats", lambda: decode_control(bytes([MsgType.PERFORMANCE_STATS]) + NESTED.encode()),
     InputProtocolError),
    ("API page token", lambda: _decode_token(_b64("[" * 1000)), BadPageToken),
    ("chat page token", lambda: _parse_page_token(_b64("[" * 1000)), ValueError),
    ("events frame", lambda: parse_client_message(NESTED), ProtocolError),
    ("published event", lambda: check_event(NESTED), lambda out: out[2].startswith("event is not valid JSON")),
    ("header- subprotocol", lambda: decode_auth_subprotocols(["header-" + _b64(NESTED)]), lambda out: out is None),
    ("game message to chat", lambda: from_game(NESTED.encode(), 0.0), lambda out: out["text"] == NESTED),
    ("demo feed", lambda: describe(1, b'{"a":' * 50_000), lambda out: out.kind == "message"),
]


@pytest.mark.parametrize("call, expected", [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS])
def test_each_parser_of_untrusted_input_turns_deep_nesting_into_its_own_error(
        call: Callable[[], object], expected: Callable[[object], bool] | type[Exception]) -> None:
    """What used to raise RecursionError (and crash the caller) is each parser's own refusal now."""
    if isinstance(expected, type):
        with pytest.raises(expected):
            call()
    else:
        assert expected(call())


def _json_parses(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) of every json.loads/json.load/JSONDecoder use, `from json import ...` and `<x>.json()` call."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "json" \
                and node.attr in ("loads", "load", "JSONDecoder", "decoder"):
            found.append((node.lineno, f"json.{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module in ("json", "json.decoder") \
                and any(a.name in ("loads", "load", "JSONDecoder") for a in node.names):
            found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "json" \
                and not node.args:
            found.append((node.lineno, f"{ast.unparse(node.func)}()"))  # Starlette's Request.json(), httpx's
    return found


def test_every_json_parse_goes_through_json_input() -> None:
    offenders = [f"{path.relative_to(SRC.parent)}:{line}: {what}"
                 for path in sorted(SRC.rglob("*.py")) if path != THE_PARSER
                 for line, what in _json_parses(ast.parse(path.read_text(), str(path)))]
    assert not offenders, "parse JSON with playcast.json_input.parse_json instead:\n" + "\n".join(offenders)


def test_the_walk_finds_each_kind_of_parse() -> None:
    source = "import json\nfrom json import loads\njson.loads(b)\nx = json.load\nawait request.json()\n"
    assert [what for _, what in sorted(_json_parses(ast.parse(source)))] == [
        "from json import ...", "json.loads", "json.load", "request.json()"]
