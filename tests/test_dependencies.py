"""The packages' dependencies run one way (docs: one session's data flow, api -> control -> hostproto <- host ->
media; bus carries bytes and positions; events does not reach into control): every import in src/playcast is read
with ast and checked against what each package may not import."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "playcast"

FORBIDDEN: dict[str, set[str]] = {
    "bus": {"events", "control", "api", "host", "media", "hostproto", "store", "server", "assemble"},
    "events": {"control", "api", "host", "media", "hostproto", "server", "assemble"},
    "control": {"api", "host", "media", "server", "assemble", "web"},
    "hostproto": {"control", "host", "api", "media", "store", "events", "bus", "server", "assemble"},
    "host": {"control", "api", "store", "events", "bus", "server", "assemble"},
    "media": {"api", "control", "host", "hostproto", "store", "events", "bus", "server", "assemble"},
    "store": {"api", "control", "host", "media", "events", "bus", "server", "assemble"},
}


def _imports() -> dict[str, set[tuple[str, str]]]:
    """Package -> {(the playcast package it imports, the importing module's path)}."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts  # ('playcast', 'bus', 'redis')
        package = parts[1]
        module_parts = parts[:-1] if path.name == "__init__.py" else parts
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module_parts[: len(module_parts) - node.level + (1 if path.name == "__init__.py" else 0)]
                    names = [".".join(base) + (f".{node.module}" if node.module else "")]
                elif node.module:
                    names = [node.module]
            for name in names:
                bits = name.split(".")
                if bits[0] == "playcast" and len(bits) > 1 and bits[1] != package:
                    found[package].add((bits[1], str(path.relative_to(SRC.parent.parent))))
    return found


def test_no_package_imports_what_the_data_flow_forbids() -> None:
    imports = _imports()
    assert imports, "no imports read: is SRC right?"
    wrong = sorted(f"{where} imports playcast.{target} ({package} may not)"
                   for package, forbidden in FORBIDDEN.items()
                   for target, where in imports.get(package, set()) if target in forbidden)
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_relative_and_absolute_imports() -> None:
    imports = _imports()
    assert ("bus", "src/playcast/events/service.py") in imports["events"]  # absolute
    assert any(target == "json_input" for target, _ in imports["bus"])
