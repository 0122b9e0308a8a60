"""The provisioned Grafana dashboards, read the way the tests need them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parents[1] / "grafana" / "dashboards"
METRIC = re.compile(r"\bsocialstream_[a-z_]+")


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield from panel.get("panels", [])  # inside a row
        if panel["type"] != "row":
            yield panel


def queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) of every panel target."""
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel["targets"]:
                yield name, panel["title"], target["expr"]
