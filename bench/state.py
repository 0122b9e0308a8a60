"""Campaign state size and snapshot/restore time, on campaigns that lived a whole simulated day
(every policy path reached), not on nearly empty ones.

    .venv/bin/python -m bench.state [--campaigns 64] [--hours 24] [--seed 11] [--rounds 5]

Builds the state by replaying ``simulate --campaigns N --duration 24h`` through the pipeline, then
reports per campaign: the snapshot the worker writes to the changelog (bytes, p50 and max, and the
fields that take the most), the Python memory the restored state holds (tracemalloc), and the time
to serialise every campaign (the commit hook) and to restore them all (a restart).
Target: <= 5 KB per active campaign.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections import Counter

import orjson

from streams.replay import replay
from streams.simulator import HOUR_MS, simulate
from streams.state import CampaignState

TARGET_BYTES = 5_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--campaigns", type=int, default=64)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    events, _ = simulate(campaigns=args.campaigns, duration_ms=args.hours * HOUR_MS,
                         seed=args.seed)
    result = replay(orjson.dumps(e) for e in events)
    campaigns = result.pipeline.store.campaigns
    print(f"{len(campaigns)} campaigns after {args.hours} h of simulated traffic "
          f"({result.accepted:,} events; recommendations: "
          + ", ".join(f"{a} {n}" for a, n in sorted(result.recommendations.items())) + ")")
    snapshot_s, restore_s = [], []
    blobs: dict[str, bytes] = {}
    for _ in range(args.rounds):
        started = time.perf_counter()
        blobs = {cid: state.to_bytes() for cid, state in campaigns.items()}
        snapshot_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        restored = {cid: CampaignState.from_bytes(blob) for cid, blob in blobs.items()}
        restore_s.append(time.perf_counter() - started)
    assert len(restored) == len(campaigns)
    sizes = sorted(len(b) for b in blobs.values())
    mean = sum(sizes) / len(sizes)
    print(f"snapshot bytes per campaign: mean {mean:,.0f}, p50 {sizes[len(sizes) // 2]:,}, "
          f"max {sizes[-1]:,}; target <= {TARGET_BYTES:,}: "
          f"{'met' if mean <= TARGET_BYTES else 'NOT met'}")
    fields: Counter[str] = Counter()
    for state in campaigns.values():
        data = state.to_dict()
        for key, value in data.items():
            if key == "policy":
                for part, inner in value.items():
                    fields[f"policy.{part}"] += len(orjson.dumps(inner))
            else:
                fields[key] += len(orjson.dumps(value))
    print("  mean JSON bytes by field, before compression: " + ", ".join(
        f"{k} {v / len(campaigns):,.0f}" for k, v in fields.most_common(10)))
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = [CampaignState.from_bytes(blob) for blob in blobs.values()]
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    print(f"python memory of the restored states: {grown / len(kept):,.0f} bytes per campaign")
    print(f"snapshot all: median {statistics.median(snapshot_s) * 1000:.1f} ms; "
          f"restore all: median {statistics.median(restore_s) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
