"""Metrics checked the way operators consume them: promtool on the config and on a live /metrics,
and a real Prometheus scraping a worker that runs every dashboard query."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Deployment, by_label, free_port, scrape, wait_until
from tests.dashboards import queries
from tests.eventgen import is_json, mixed

pytestmark = pytest.mark.integration
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(
    not (PROMTOOL and PROMETHEUS),
    reason="Prometheus is not installed: ./scripts/setup installs it (Debian package prometheus)")
SCRAPE_SECONDS = 1
RATE_INTERVAL = "15s"  # what Grafana makes of $__rate_interval: >= 4 scrape intervals


@needs_prometheus
def test_the_compose_prometheus_config_is_valid() -> None:
    out = subprocess.run([str(PROMTOOL), "check", "config", str(ROOT / "docker/prometheus.yml")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture
def busy_worker(deployment: Deployment) -> Iterator[int]:
    """A worker that has processed a mixed stream (every event type, labels, dead letters)."""
    assert deployment.cli("topics", "create").returncode == 0
    lines = [p.raw for p in mixed(6_000, seed=7) if is_json(p.raw)]
    port = deployment.start_worker()
    assert deployment.cli("produce", "-", input=b"\n".join(lines)).returncode == 0
    def processed() -> float:
        return sum(by_label(scrape(port), "socialstream_events_total", "type").values())
    assert wait_until(lambda: processed() >= 5_000, timeout=120)
    yield port


@needs_prometheus
def test_live_metrics_pass_promtool(busy_worker: int) -> None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{busy_worker}/metrics", timeout=5).read()
    out = subprocess.run([str(PROMTOOL), "check", "metrics"], input=text, capture_output=True)
    assert out.returncode == 0, (out.stdout + out.stderr).decode()


@needs_prometheus
def test_every_dashboard_query_returns_data_from_a_real_prometheus(
        busy_worker: int, tmp_path: Path) -> None:
    api = start_prometheus(tmp_path, target=f"127.0.0.1:{busy_worker}")
    # The worker keeps serving while Prometheus collects enough samples for every rate window.
    assert wait_until(lambda: _samples(api, "socialstream_messages_total") >= 6, timeout=60)
    empty = []
    for name, title, expr in queries():
        promql = expr.replace("$__rate_interval", RATE_INTERVAL)
        result = _query(api, promql)
        if not result:
            empty.append(f"{name} / {title}: {promql}")
    assert not empty, "queries without data:\n" + "\n".join(empty)


def start_prometheus(tmp_path: Path, target: str) -> str:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s"},
        "scrape_configs": [{"job_name": "socialstream", "static_configs": [{"targets": [target]}]}],
    }))
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen([str(PROMETHEUS), f"--config.file={config}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}"
    _cleanup.append(proc)
    def ready() -> bool:
        try:
            return bool(urllib.request.urlopen(f"{api}/-/ready", timeout=2).status == 200)
        except OSError:
            return proc.poll() is not None  # exited: fail below with its log
    assert wait_until(ready, timeout=60)
    assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
    return api


_cleanup: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _stop_prometheus() -> Iterator[None]:
    yield
    while _cleanup:
        proc = _cleanup.pop()
        proc.terminate()
        proc.wait(timeout=30)


def _query(api: str, promql: str) -> list[Any]:
    url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    body = json.loads(urllib.request.urlopen(url, timeout=10).read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _samples(api: str, metric: str) -> int:
    result = _query(api, f"count_over_time({metric}[5m])")
    return int(float(result[0]["value"][1])) if result else 0
