"""docker/alerts.yml: valid, unit-tested (promtool), loaded by docker/prometheus.yml the way
docker/compose.yaml mounts it, and made of labelled, documented alerts over metrics, labels and
label values that socialstream defines.

The rules are read the way Prometheus reads them: a real Prometheus (Debian package
``prometheus``, installed by ./scripts/setup with promtool) starts on docker/prometheus.yml and
reports its rules through /api/v1/rules, so what is checked is what it loaded.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

import streams.metrics  # noqa: F401  (registers every metric)
from streams.policy import ACTIONS
from streams.training import Models
from tests.conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
RULES = DOCKER / "alerts.yml"
RULE_TESTS = DOCKER / "alerts.test.yml"
CONFIG = DOCKER / "prometheus.yml"
COMPOSE = DOCKER / "compose.yaml"
CONFIG_IN_CONTAINER = "/etc/prometheus/prometheus.yml"

METRIC = re.compile(r"\bsocialstream_[a-z_]+")
SEVERITIES = {"page", "ticket"}
TEAMS = {"sre", "community"}
BUSINESS = {"SocialstreamSentimentAlertBurst"}  # team community: a community manager is paged


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: ./scripts/setup installs it (Debian package "
                    f"prometheus; or: apt-get install prometheus)", pytrace=False)
    return path


def promtool(*args: str) -> str:
    out = subprocess.run([tool("promtool"), *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, f"promtool {' '.join(args)} failed:\n{out.stdout}{out.stderr}"
    return out.stdout


def exposed_names() -> set[str]:
    """Every sample name socialstream's metrics expose (counters with _total, histograms'
    _bucket/_sum/_count, info with _info)."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"),
                "info": ("_info",)}
    return {family.name + suffix for family in REGISTRY.collect()
            if family.name.startswith("socialstream_") for suffix in suffixes[family.type]}


def family(name: str) -> str:
    return re.sub(r"_(total|bucket|count|sum|info)$", "", name)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    """The rule groups a real Prometheus loaded from docker/prometheus.yml, once every rule has
    been evaluated at least once (its health then says whether its query ran)."""
    state = tmp_path_factory.mktemp("prometheus")
    api = f"http://127.0.0.1:{free_port()}"
    log = open(state / "prometheus.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen([tool("prometheus"), f"--config.file={CONFIG}",
                             f"--storage.tsdb.path={state / 'tsdb'}",
                             f"--web.listen-address={api.removeprefix('http://')}"],
                            stdout=log, stderr=subprocess.STDOUT)

    def groups() -> list[dict[str, Any]] | None:
        if proc.poll() is not None:
            return []  # exited: fail below with its log
        try:
            body = json.loads(urllib.request.urlopen(f"{api}/api/v1/rules", timeout=2).read())
        except OSError:
            return None
        found: list[dict[str, Any]] = body["data"]["groups"]
        evaluated = all(r["health"] != "unknown" for g in found for r in g["rules"])
        return found if found and evaluated else None

    try:
        found = wait_until(groups, timeout=60)
        assert found, ("Prometheus loaded no rules from docker/prometheus.yml:\n"
                       + (state / "prometheus.log").read_text()[-3000:])
        yield found
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def rules(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in groups for rule in group["rules"]]


def test_rules_are_valid() -> None:
    promtool("check", "rules", str(RULES))


def test_rules_pass_their_unit_tests() -> None:
    promtool("test", "rules", str(RULE_TESTS))


def test_prometheus_config_is_valid_and_loads_the_rules_file() -> None:
    out = promtool("check", "config", str(CONFIG))
    assert f"Checking {RULES}" in out, out  # rule_files resolved beside the config


def test_prometheus_loads_every_rule_and_evaluates_it(loaded: list[dict[str, Any]]) -> None:
    assert {group["file"] for group in loaded} == {str(RULES)}
    names = [rule["name"] for rule in rules(loaded)]
    assert len(names) == len(set(names)), names
    assert f"{len(names)} rules found" in promtool("check", "rules", str(RULES))
    broken = [f"{r['name']}: {r.get('lastError')}" for r in rules(loaded) if r["health"] != "ok"]
    assert not broken, broken


def test_compose_mounts_the_rules_where_the_config_looks_for_them(
        loaded: list[dict[str, Any]]) -> None:
    text = COMPOSE.read_text()
    service = re.search(r"^  prometheus:\n((?:    .*\n|\n)+)", text, re.M)
    assert service, "docker/compose.yaml has no prometheus service"
    mounts = set(re.findall(r"^\s+- \./(\S+?)(?::ro)?$", service[1], re.M))
    config_dir = Path(CONFIG_IN_CONTAINER).parent
    assert f"{CONFIG.name}:{CONFIG_IN_CONTAINER}" in mounts, mounts
    for group in loaded:
        relative = Path(group["file"]).relative_to(CONFIG.parent)
        assert f"{relative}:{config_dir / relative}" in mounts, (relative, mounts)


def test_every_alert_is_labelled_for_routing_and_documented(
        loaded: list[dict[str, Any]]) -> None:
    for rule in rules(loaded):
        name = rule["name"]
        assert rule["type"] == "alerting", name
        labels, annotations = rule["labels"], rule["annotations"]
        assert labels.get("severity") in SEVERITIES, (name, labels)
        assert labels.get("team") in TEAMS, (name, labels)
        assert labels["team"] == ("community" if name in BUSINESS else "sre"), (name, labels)
        assert len(annotations.get("summary", "")) > 30, name
        runbook = annotations.get("runbook", "")
        # What it means, what to check first, what to do: a few sentences.
        assert len(runbook) > 200 and runbook.count(". ") >= 2, (name, runbook)
        assert "Check first" in runbook or "Check /readyz" in runbook, (name, runbook)
    business = [r for r in rules(loaded) if r["name"] in BUSINESS]
    assert [r["labels"]["severity"] for r in business] == ["page"] * len(BUSINESS)


def test_every_metric_an_alert_uses_is_defined_in_streams_metrics(
        loaded: list[dict[str, Any]]) -> None:
    exposed = exposed_names()
    families = {family(name) for name in exposed}
    for rule in rules(loaded):
        for metric in METRIC.findall(rule["query"]):
            assert metric in exposed, f"{rule['name']}: streams/metrics.py exposes no {metric}"
        for text in rule["annotations"].values():  # runbooks may name a family (no suffix)
            for metric in METRIC.findall(text):
                assert family(metric) in families, f"{rule['name']}: {metric} in an annotation"


def test_label_values_in_the_alerts_exist(loaded: list[dict[str, Any]]) -> None:
    """A typo in a label value matches nothing and never fires: check models, their quality
    metrics, actions and the job against what the code and the scrape config use."""
    models = Models()
    report = models.report()
    jobs = set(re.findall(r"job_name:\s*(\S+)", CONFIG.read_text()))
    for rule in rules(loaded):
        query, name = rule["query"], rule["name"]
        assert set(re.findall(r'job="([^"]+)"', query)) <= jobs, (name, jobs)
        for model in re.findall(r'model="([^"]+)"', query):
            assert model in models.versions(), (name, model)
            for selector in re.findall(r'metric=~?"([^"]+)"', query):
                assert set(selector.split("|")) <= set(report[model]) - {"n"}, (name, selector)
        for action in re.findall(r'action="([^"]+)"', query):
            assert action in ACTIONS, (name, action)


def test_every_alert_has_a_firing_and_a_quiet_unit_test(loaded: list[dict[str, Any]]) -> None:
    cases = re.split(r"^\s+- eval_time:", RULE_TESTS.read_text(), flags=re.M)[1:]
    fires, quiet = set(), set()
    for case in cases:
        name = re.search(r"alertname: (\w+)", case)
        assert name, case
        if re.search(r"exp_alerts: \[\]", case):
            quiet.add(name[1])
        elif "- exp_labels:" in case and "exp_annotations:" in case:
            fires.add(name[1])
    names = {rule["name"] for rule in rules(loaded)}
    assert names - fires == set(), "alerts without a firing test"
    assert names - quiet == set(), "alerts without a quiet test"
