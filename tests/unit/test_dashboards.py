"""Structure of the provisioned dashboards: stable uids, datasource by variable, units,
descriptions, rate windows, and only metrics this service defines."""

from __future__ import annotations

import re

from prometheus_client import REGISTRY

import streams.metrics  # noqa: F401  (registers every metric)
from tests.dashboards import METRIC, dashboards, panels, queries

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_there_are_dashboards_with_unique_stable_uids() -> None:
    found = dashboards()
    assert {"service.json", "models.json", "decisions.json"} <= set(found)
    uids = [d["uid"] for d in found.values()]
    assert len(set(uids)) == len(uids) and all(u.startswith("socialstream-") for u in uids)


def test_every_dashboard_selects_prometheus_through_a_variable() -> None:
    for name, dashboard in dashboards().items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", name
        assert variables["datasource"]["query"] == "prometheus", name


def test_every_panel_has_a_datasource_variable_a_unit_and_a_description() -> None:
    for name, dashboard in dashboards().items():
        ids = [p["id"] for p in panels(dashboard)]
        assert len(set(ids)) == len(ids), name
        for panel in panels(dashboard):
            where = f"{name}: {panel['title']}"
            assert panel["datasource"] == DATASOURCE, where
            assert all(t["datasource"] == DATASOURCE for t in panel["targets"]), where
            assert panel["fieldConfig"]["defaults"].get("unit"), where
            assert len(panel.get("description", "")) > 40, where
            assert panel["targets"], where


def test_rates_use_the_rate_interval_and_metrics_exist() -> None:
    defined = {family.name for family in REGISTRY.collect()}
    for name, title, expr in queries():
        for window in re.findall(r"\[([^\]]+)\]", expr):
            assert window == "$__rate_interval", f"{name}: {title}: {expr}"
        for metric in METRIC.findall(expr):
            family = re.sub(r"_(total|bucket|count|sum|info)$", "", metric)
            assert family in defined, f"{name}: {title}: {metric} is not a socialstream metric"
