"""The learning core on a real broker: late labels are learned; several workers, one lineage."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from streams.replay import replay
from streams.state import CampaignState
from tests.conftest import Deployment, by_label, get_json, latest_by_key, scrape, wait_until
from tests.eventgen import T0_MS, mixed

pytestmark = pytest.mark.integration

POSITIVE = ["love it so much", "best purchase ever, great quality", "amazing, thank you"]
NEGATIVE = ["worst service ever", "this is broken and awful", "terrible, want a refund"]


def texts_then_late_labels(n: int) -> list[bytes]:
    """n comments without labels, then (an hour later in event time) a label for each, plus
    labels for texts nobody sent."""
    lines = []
    for i in range(n):
        text = (POSITIVE if i % 2 else NEGATIVE)[i % 3]
        lines.append(orjson.dumps({"event_id": f"c-{i}", "ts": T0_MS + i, "type": "comment",
                                   "platform": "x", "campaign_id": f"camp-{i % 10}",
                                   "post_id": f"p-{i % 10}", "text": text}))
    for i in range(n):
        lines.append(orjson.dumps({"event_id": f"l-{i}", "ts": T0_MS + 3_600_000 + i,
                                   "type": "label", "platform": "x",
                                   "campaign_id": f"camp-{i % 10}", "target_event_id": f"c-{i}",
                                   "sentiment": "positive" if i % 2 else "negative"}))
    for i in range(10):
        lines.append(orjson.dumps({"event_id": f"o-{i}", "ts": T0_MS + 7_200_000,
                                   "type": "label", "platform": "x", "campaign_id": "camp-0",
                                   "target_event_id": f"never-sent-{i}",
                                   "sentiment": "neutral"}))
    return lines


def test_labels_arriving_after_their_texts_are_learned(deployment: Deployment) -> None:
    assert deployment.cli("topics", "create").returncode == 0
    port = deployment.start_worker()
    lines = texts_then_late_labels(200)
    sent = deployment.cli("produce", "-", input=b"\n".join(lines) + b"\n")
    assert sent.returncode == 0, sent.stderr
    models = wait_until(lambda: (m := get_json(port, "/models"))["versions"]["sentiment"] >= 200
                        and m)
    assert models["versions"]["sentiment"] == 200
    assert models["sentiment"]["n"] == 200
    assert models["sentiment"]["accuracy"] > 0.5  # the lexicon prior alone gets these right

    def orphans() -> int:
        states = asyncio.run(latest_by_key(deployment.bootstrap, deployment.state_changelog))
        return sum(CampaignState.from_bytes(v).orphan_labels for v in states.values())
    assert wait_until(lambda: orphans() == 10, timeout=60)
    assert replay(lines).trainer.models.version == 200  # the offline oracle agrees


def ready(port: int) -> list[int]:
    """The input partitions a worker owns once it is ready, else []."""
    try:
        body = get_json(port, "/readyz")
    except OSError:
        return []
    return list(body["partitions"]) if body["ready"] else []


def test_two_workers_score_with_one_lineage(deployment: Deployment) -> None:
    assert deployment.cli("topics", "create").returncode == 0
    ports = [deployment.start_worker(), deployment.start_worker()]

    def split() -> bool:
        owned = [ready(port) for port in ports]
        return all(owned) and sorted(p for o in owned for p in o) == [0, 1, 2, 3]
    assert wait_until(split, timeout=120), [ready(port) for port in ports]
    payloads = list(mixed(6000, seed=21))
    lines = [p.raw for p in payloads if not p.raw.startswith(b"not json")]
    sent = deployment.cli("produce", "-", input=b"\n".join(lines) + b"\n")
    assert b"sent" in sent.stderr, sent.stderr
    oracle = replay(lines).trainer.models
    expected = sum(1 for p in payloads if p.type) - sent.stderr.count(b"line ")

    def converged() -> list[dict[str, object]] | None:
        seen = [get_json(port, "/models") for port in ports]
        versions = {m["version"] for m in seen}
        return seen if versions == {oracle.version} else None
    models = wait_until(converged, timeout=240)
    assert models, [get_json(port, "/models")["version"] for port in ports]
    assert models[0]["lineage"] == models[1]["lineage"]
    counted = [sum(by_label(scrape(port), "socialstream_events_total", "type").values())
               for port in ports]
    assert all(c > 0 for c in counted), counted  # both workers own partitions
    assert sum(counted) >= expected - 100  # rerouted or rebalanced events may be re-read
