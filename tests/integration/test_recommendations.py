"""Worker -> recommendations topic, read with kcat as a user would: every message valid against
the shipped JSON Schema, keyed by its campaign, and the same ids as the offline replay."""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.resources import files

import jsonschema
import orjson
import pytest

from streams.models.engagement import POST_HORIZON_MS
from streams.replay import replay
from streams.simulator import HOUR_MS, simulate
from tests.conftest import Deployment, by_label, scrape, wait_until

pytestmark = pytest.mark.integration
SCHEMA = json.loads(files("streams").joinpath("schemas/recommendation.schema.json").read_text())


def unlabelled(hours: int) -> list[bytes]:
    """Simulated traffic without sentiment labels, shorter than the post horizon: the worker and
    the replay then score with the same sentiment prior and an untrained post model, so their
    recommendations must match exactly.  With labels or matured posts the worker scores with the
    newest model snapshot it has, which may lag the replay's."""
    assert hours * HOUR_MS < POST_HORIZON_MS
    events, _ = simulate(campaigns=8, creatives=4, duration_ms=hours * HOUR_MS, seed=11)
    out = []
    for event in events:
        if event["type"] != "label":
            event.pop("sentiment", None)
            out.append(orjson.dumps(event))
    return out


def test_recommendations_on_the_topic_match_the_replay(deployment: Deployment) -> None:
    assert deployment.cli("topics", "create").returncode == 0
    lines = unlabelled(hours=5)
    oracle: list[bytes] = []
    replay(lines, emit=oracle.append)
    expected = {orjson.loads(r)["recommendation_id"] for r in oracle}
    assert len({orjson.loads(r)["action"] for r in oracle}) >= 3  # a varied set to compare
    port = deployment.start_worker()
    assert deployment.cli("produce", "-", input=b"\n".join(lines)).returncode == 0
    def published() -> float:
        return sum(by_label(scrape(port), "socialstream_recommendations_total",
                            "action").values())
    assert wait_until(lambda: published() >= len(expected), timeout=180)

    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed (Debian package kcat; ./scripts/setup installs it)"
    topic = deployment.env()["SOCIALSTREAM_RECOMMENDATIONS_TOPIC"]
    out = subprocess.run([kcat, "-C", "-b", deployment.bootstrap, "-t", topic, "-e", "-q",
                          "-f", "%k\t%s\n"], capture_output=True, timeout=120, check=True)
    got = set()
    for row in out.stdout.decode().splitlines():
        key, value = row.split("\t", 1)
        rec = orjson.loads(value)
        jsonschema.validate(rec, SCHEMA)
        assert key == rec["campaign_id"]
        got.add(rec["recommendation_id"])
    assert got == expected
