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

from streams.replay import replay
from tests.conftest import Deployment, by_label, scrape, wait_until
from tests.eventgen import is_json, mixed

pytestmark = pytest.mark.integration
SCHEMA = json.loads(files("streams").joinpath("schemas/recommendation.schema.json").read_text())


def unlabelled(n: int) -> list[bytes]:
    """Events without sentiment labels: the worker and the replay then score with the same
    (prior-only) sentiment model, so their recommendations must match exactly.  With labels
    the worker scores with the newest snapshot it has, which may lag the replay's."""
    out = []
    for p in mixed(n, seed=11):
        if not is_json(p.raw):
            continue
        raw = orjson.loads(p.raw)
        if isinstance(raw, dict) and raw.get("type") != "label":
            raw.pop("sentiment", None)
            out.append(orjson.dumps(raw))
    return out


def test_recommendations_on_the_topic_match_the_replay(deployment: Deployment) -> None:
    assert deployment.cli("topics", "create").returncode == 0
    lines = unlabelled(12_000)
    oracle: list[bytes] = []
    replay(lines, emit=oracle.append)
    expected = {orjson.loads(r)["recommendation_id"] for r in oracle}
    assert len(expected) >= 50
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
