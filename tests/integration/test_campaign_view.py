"""GET /campaigns/{id}: any worker answers for every campaign (Faust forwards to the owner);
404 for a campaign nobody has seen."""

from __future__ import annotations

import urllib.error
import urllib.request

import orjson
import pytest

from agents.kafka import owner_partition
from streams.simulator import HOUR_MS, simulate
from tests.conftest import Deployment, by_label, get_json, scrape, wait_until

pytestmark = pytest.mark.integration


def owned(port: int) -> list[int]:
    """Input partitions a worker owns (none while it is not ready: /readyz answers 503)."""
    try:
        return list(get_json(port, "/readyz")["partitions"])
    except urllib.error.HTTPError:
        return []


def test_both_workers_answer_for_campaigns_on_either(deployment: Deployment) -> None:
    assert deployment.cli("topics", "create").returncode == 0
    events, truth = simulate(campaigns=8, creatives=3, duration_ms=2 * HOUR_MS, seed=3)
    lines = [orjson.dumps(e) for e in events]
    ports = [deployment.start_worker(), deployment.start_worker()]
    def split() -> bool:  # both workers own partitions
        shares = [owned(p) for p in ports]
        return all(shares) and sum(map(len, shares)) == deployment.partitions
    assert wait_until(split, timeout=120)
    assert deployment.cli("produce", "-", input=b"\n".join(lines)).returncode == 0
    def processed() -> float:
        return sum(sum(by_label(scrape(p), "socialstream_events_total", "type").values())
                   for p in ports)
    assert wait_until(lambda: processed() >= len(lines), timeout=180)

    owners = {p: set(owned(p)) for p in ports}
    campaigns = [c.campaign_id for c in truth.campaigns]
    remote = [(p, c) for p in ports for c in campaigns
              if owner_partition(c, deployment.partitions) not in owners[p]]
    assert remote, "every campaign landed on one worker: the test proves nothing"
    for port in ports:
        for cid in campaigns:
            view = get_json(port, f"/campaigns/{cid}")
            assert view["campaign_id"] == cid
            assert sum(view["events"].values()) > 0 and view["creatives"]
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/campaigns/nobody", timeout=10)
    assert missing.value.code == 404
