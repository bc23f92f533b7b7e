"""Fuzz-test setup: give hypothesis back its own example printer.

schemathesis (its pytest plugin loads in every run) swaps hypothesis's RepresentationPrinter for one that prints
nothing, so every failing hypothesis test would report `x=,`; the fuzz tests need the failing example shown."""

from __future__ import annotations

import hypothesis.core
from hypothesis.vendor import pretty

hypothesis.core.RepresentationPrinter = pretty.RepresentationPrinter  # type: ignore[misc]
