"""Reads a playcast /metrics answer the way Prometheus would: prometheus_client's own text parser.

Test support (scrape and parse); what the numbers must be is for each test to say."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Scrape:
    """Every sample of one scrape, by sample name and labels."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    types: dict[str, str]  # family name -> counter | gauge | summary | info ...

    def get(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def value(self, name: str, **labels: str) -> float:
        found = self.get(name, **labels)
        assert found is not None, f"no sample {name}{labels} in the scrape"
        return found

    def labelled(self, name: str, label: str) -> dict[str, float]:
        """{value of `label`: sample value} for every sample called `name`."""
        out: dict[str, float] = {}
        for (n, lbls), v in self.samples.items():
            found = dict(lbls).get(label)
            if n == name and found is not None:
                out[found] = v
        return out


def parse(text: str) -> Scrape:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return Scrape(samples, types)


async def ascrape(http: httpx.AsyncClient, **headers: str) -> Scrape:
    r = await http.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == CONTENT_TYPE
    return parse(r.text)


async def scrape_when(http: httpx.AsyncClient, cond: Callable[[Scrape], bool],
                      **headers: str) -> Scrape | None:
    """One scrape, returned when `cond(scrape)` holds, else None (a check to poll with wait_until())."""
    m = await ascrape(http, **headers)
    return m if cond(m) else None
