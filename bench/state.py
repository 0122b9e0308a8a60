"""Snapshot and restore of campaign state for 10,000 active campaigns.

    .venv/bin/python -m bench.state [--campaigns 10000] [--events 300000] [--rounds 5]

Builds the state by running a realistic mix through the pipeline, then times serialising every
campaign (what the worker's commit hook does) and restoring them all (what a restart does).
Targets: restore under 2 s, under 5 KB per campaign.
"""

from __future__ import annotations

import argparse
import statistics
import time

from streams.events import SocialEvent, decode
from streams.pipeline import Pipeline
from streams.state import CampaignState
from tests.eventgen import mixed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--campaigns", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pipeline = Pipeline()
    for p in mixed(args.events, seed=9, campaigns=args.campaigns):
        event = decode(p.raw)
        if isinstance(event, SocialEvent):
            pipeline.process(event)
    campaigns = pipeline.store.campaigns
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
    total = sum(sizes)
    print(f"{len(campaigns)} campaigns from {args.events} events")
    print(f"snapshot: median {statistics.median(snapshot_s):.3f} s, {total / 1e6:.1f} MB, "
          f"{total / len(sizes):,.0f} bytes per campaign (p50 {sizes[len(sizes) // 2]:,}, "
          f"max {sizes[-1]:,})")
    print(f"restore:  median {statistics.median(restore_s):.3f} s")


if __name__ == "__main__":
    main()
