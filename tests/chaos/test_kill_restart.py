"""kill -9 mid-stream, restart: nothing lost, nothing applied twice, same model lineage, measured
against the offline replay of the same partition order."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from streams.events import decode_message
from streams.replay import replay
from streams.state import CampaignState
from tests.conftest import (
    Deployment,
    by_label,
    get_json,
    latest_by_key,
    read_to_end,
    scrape,
    wait_until,
)
from tests.eventgen import is_json, mixed

pytestmark = pytest.mark.integration


def processed(port: int) -> float:
    samples = scrape(port)
    return sum(by_label(samples, "socialstream_events_total", "type").values())


def durable_states(dep: Deployment) -> dict[str, dict[str, Any]]:
    states = asyncio.run(latest_by_key(dep.bootstrap, dep.state_changelog))
    return {k.decode(): CampaignState.from_bytes(v).deterministic() for k, v in states.items()}


def test_kill_9_and_restart_match_the_replay_oracle(deployment: Deployment) -> None:
    deployment.partitions = 1  # one partition: one order, so the model lineage is comparable
    assert deployment.cli("topics", "create").returncode == 0
    lines = [p.raw for p in mixed(40_000, seed=31) if is_json(p.raw)]
    first, rest = lines[:12_000], lines[12_000:]
    assert deployment.cli("produce", "-", input=b"\n".join(first)).returncode == 0
    port = deployment.start_worker()
    def committed_first() -> bool:  # past a commit, so the restart starts from snapshots
        return processed(port) >= 11_000 and \
            scrape(port)[("socialstream_state_snapshot_bytes_total", ())] > 0
    assert wait_until(committed_first, timeout=180, every=0.05)
    # The rest arrives as a backlog: the worker is killed in the middle of working through it,
    # with events applied after its last commit, which the restart must re-read and skip.
    with ThreadPoolExecutor(1) as pool:
        producing = pool.submit(deployment.cli, "produce", "-", input=b"\n".join(rest))
        assert wait_until(lambda: processed(port) >= 20_000, timeout=180, every=0.02)
        killed_at = processed(port)  # a lower bound: it keeps going until the signal lands
        deployment.workers[-1].kill()  # SIGKILL: no revoke, no final commit
        deployment.workers[-1].wait()
        restarted = time.monotonic()
        port = deployment.start_worker()
        assert producing.result().returncode == 0

    records = asyncio.run(read_to_end(deployment.bootstrap, deployment.input_topic))
    ordered = [line.raw for r in sorted(records, key=lambda r: r.offset)
               for line in decode_message(r.value)]
    oracle = replay(ordered)
    expected = {cid: s.deterministic() for cid, s in oracle.pipeline.store.campaigns.items()}
    if not wait_until(lambda: durable_states(deployment) == expected, timeout=240, every=2):
        pytest.fail(_difference(expected, durable_states(deployment)))
    caught_up = time.monotonic() - restarted
    lineage = oracle.trainer.models.lineage
    if not wait_until(lambda: get_json(port, "/models")["lineage"] == lineage, timeout=120):
        pytest.fail(f"model lineage differs: replay {oracle.trainer.models.version} {lineage}, "
                    f"worker {get_json(port, '/models')}")

    actual = durable_states(deployment)
    lost = twice = 0
    for cid, state in expected.items():
        want, got = Counter(state["counts"]), Counter(actual[cid]["counts"])
        lost += sum((want - got).values())
        twice += sum((got - want).values())
    after = scrape(port)
    second = sum(by_label(after, "socialstream_events_total", "type").values()) + \
        after[("socialstream_duplicate_events_total", ())]
    re_read = second - (oracle.accepted - killed_at)
    print(f"\nkill -9 figures: events {oracle.accepted}, lost {lost}, applied twice {twice}, "
          f"re-read after restart {re_read:.0f}, seconds to catch up {caught_up:.1f}, "
          f"model version {oracle.trainer.models.version}")
    assert lost == 0 and twice == 0
    assert re_read > 0  # the restart really re-read events the killed worker had applied


def _difference(expected: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]) -> str:
    missing = sorted(set(expected) - set(actual))
    for cid in sorted(set(expected) & set(actual)):
        diffs = {k: (v, actual[cid].get(k)) for k, v in expected[cid].items()
                 if actual[cid].get(k) != v and k != "recent_ids"}
        if diffs:
            return f"campaign {cid} differs (expected, durable): {diffs}; missing {missing}"
    return f"missing campaigns {missing}"
