"""The chaos runner's common parts: traffic, the offline oracle, and the figures every scenario
prints (Jepsen's vocabulary: what was lost, what was applied twice, which outputs are missing).

The oracle is ``streams.replay`` over exactly what a ``read_committed`` reader finds in the input
topic, each partition in offset order (events that arrived away from their campaign's partition
are taken where the worker forwarded them to).  The traffic is simulated ad delivery and unlabelled
comments: the recommendations it gives do not depend on the learned models, so their ids are the
same whatever order the partitions were learned in, and can be compared one for one.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson

from agents.kafka import owner_partition
from streams.events import SocialEvent, decode_message
from streams.replay import replay
from streams.simulator import simulate
from streams.state import CampaignState
from tests.conftest import ROOT, Deployment, by_label, latest_by_key, read_to_end, scrape

HOUR_MS = 3_600_000
DELIVERY = {"impression", "click", "conversion", "spend", "comment"}


def traffic(campaigns: int = 6, hours: float = 6, seed: int = 41) -> list[tuple[bytes, bytes]]:
    """(campaign key, event line) of a simulated stretch: delivery and unlabelled comments."""
    events, _ = simulate(campaigns, 4, int(hours * HOUR_MS), seed)
    keyed = []
    for event in events:
        if event["type"] in DELIVERY:
            event.pop("sentiment", None)
            keyed.append((event["campaign_id"].encode(), orjson.dumps(event)))
    return keyed


async def committed_records(bootstrap: str, topic: str) -> list[Any]:
    """Every record a read_committed reader finds in ``topic`` now, by partition and offset."""
    records = await read_to_end(bootstrap, topic, isolation_level="read_committed")
    return sorted(records, key=lambda r: (r.partition, r.offset))


@dataclass
class Oracle:
    states: dict[str, dict[str, Any]]
    recommendations: Counter[str]
    events: int
    model_version: int  # examples the replay's trainer learned


def oracle(records: Iterable[Any], partitions: int) -> Oracle:
    """What the worker must have done with these input records."""
    lines: list[bytes] = []
    for record in records:
        for line in decode_message(record.value):
            event = line.result
            if isinstance(event, SocialEvent) and \
                    owner_partition(event.campaign_id, partitions) != record.partition:
                continue  # forwarded: taken where it arrives in its owner's partition
            lines.append(line.raw)
    return oracle_of(lines)


def oracle_of(lines: list[bytes]) -> Oracle:
    """What the worker must have done with these event lines, in this order."""
    ids: Counter[str] = Counter()
    result = replay(lines, emit=lambda out: ids.update([orjson.loads(out)["recommendation_id"]]))
    states = {cid: s.deterministic() for cid, s in result.pipeline.store.campaigns.items()}
    return Oracle(states, ids, result.accepted, result.trainer.models.version)


def durable_states(dep: Deployment) -> dict[str, dict[str, Any]]:
    states = asyncio.run(latest_by_key(dep.bootstrap, dep.state_changelog))
    return {k.decode(): CampaignState.from_bytes(v).deterministic() for k, v in states.items()}


def published(dep: Deployment) -> Counter[str]:
    records = asyncio.run(committed_records(dep.bootstrap, dep.recommendations_topic))
    return Counter(orjson.loads(r.value)["recommendation_id"] for r in records)


@dataclass
class Figures:
    scenario: str
    events: int
    lost: int
    applied_twice: int
    recommendations: int
    recommendations_missing: int
    recommendations_duplicated: int
    seconds_to_recover: float

    def line(self) -> str:
        return (f"chaos {self.scenario}: events {self.events}, lost {self.lost}, applied twice "
                f"{self.applied_twice}, recommendations {self.recommendations} "
                f"(missing {self.recommendations_missing}, duplicated "
                f"{self.recommendations_duplicated}), seconds to recover "
                f"{self.seconds_to_recover:.1f}")

    @property
    def exact(self) -> bool:
        return self.lost == 0 and self.applied_twice == 0 and self.recommendations_missing == 0


def compare(scenario: str, expected: Oracle, dep: Deployment) -> Figures:
    """Figures of the worker's durable state and published recommendations against the oracle."""
    actual = durable_states(dep)
    lost = twice = 0
    for cid, state in expected.states.items():
        want, got = Counter(state["counts"]), Counter(actual.get(cid, {}).get("counts", {}))
        lost += sum((want - got).values())
        twice += sum((got - want).values())
    for cid in set(actual) - set(expected.states):
        twice += sum(actual[cid]["counts"].values())
    recs = published(dep)
    missing = sum((expected.recommendations - recs).values())
    duplicated = sum(n - 1 for n in recs.values() if n > 1)
    return Figures(scenario, expected.events, lost, twice, sum(expected.recommendations.values()),
                   missing, duplicated, 0.0)


def settle(scenario: str, dep: Deployment, since: float, timeout: float = 240,
           expected: Oracle | None = None) -> Figures:
    """Wait until the durable state and the recommendations match the oracle (by default: of
    the input topic as it is now), or the timeout; report the figures with the seconds it took
    since ``since``."""
    if expected is None:
        records = asyncio.run(committed_records(dep.bootstrap, dep.input_topic))
        expected = oracle(records, dep.partitions)
    deadline = time.monotonic() + timeout
    while True:
        figures = compare(scenario, expected, dep)
        if (figures.exact and expected.states == durable_states(dep)) or \
                time.monotonic() > deadline:
            break
        time.sleep(2)
    figures.seconds_to_recover = time.monotonic() - since
    print("\n" + figures.line())
    return figures


def produce(dep: Deployment, keyed: list[tuple[bytes, bytes]], *args: str) -> None:
    """Through `socialstream produce`, as a user would (batched per campaign by default)."""
    result = dep.cli("produce", "-", *args, input=b"\n".join(line for _, line in keyed))
    assert result.returncode == 0, result.stderr.decode(errors="replace")


def processed(port: int) -> float:
    """Events this worker process applied (its own count: re-reads included)."""
    return float(sum(by_label(scrape(port), "socialstream_events_total", "type").values()))


def produce_slowly(dep: Deployment, keyed: list[tuple[bytes, bytes]],
                   per_second: int = 1000) -> tuple[subprocess.Popen[bytes], Future[float]]:
    """`socialstream produce -` fed at about ``per_second`` events: input that keeps arriving
    while a scenario runs.  Returns the process and when its input ended."""
    producer = subprocess.Popen([sys.executable, "-m", "agents.cli", "produce", "-",
                                 "--batch-size", "2"], env=dep.env(), cwd=ROOT,
                                stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    pool = ThreadPoolExecutor(1)
    fed = pool.submit(_feed, producer, [line for _, line in keyed], per_second)
    pool.shutdown(wait=False)
    return producer, fed


def _feed(producer: subprocess.Popen[bytes], lines: list[bytes], per_second: int) -> float:
    assert producer.stdin is not None
    step = max(1, per_second // 10)
    for start in range(0, len(lines), step):
        producer.stdin.write(b"".join(line + b"\n" for line in lines[start:start + step]))
        producer.stdin.flush()
        time.sleep(0.1)
    producer.stdin.close()
    return time.monotonic()


def finish(producer: subprocess.Popen[bytes]) -> tuple[int, str]:
    """Wait for a producer started by produce_slowly: (exit code, its report line)."""
    producer.wait(timeout=300)
    assert producer.stderr is not None
    lines = producer.stderr.read().decode(errors="replace").strip().splitlines()
    return producer.returncode, lines[-1] if lines else ""
