"""``socialstream simulate``: the simulator's traffic to a JSONL file (ground truth beside it) or
to Kafka at a given rate."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from agents.produce import produce_lines
from streams.config import Settings
from streams.errors import InputFileError
from streams.simulator import aggregate as aggregated
from streams.simulator import parse_duration, simulate


def run_simulate(settings: Settings, *, campaigns: int, creatives: int, duration: str, seed: int,
                 out: str | None, to_kafka: bool, rate: float, aggregate: str | None = None) -> int:
    try:
        duration_ms = parse_duration(duration)
        interval_ms = parse_duration(aggregate) if aggregate else None
    except ValueError as exc:
        raise InputFileError(str(exc)) from None
    if campaigns < 1 or creatives < 1:
        raise InputFileError("--campaigns and --creatives must be at least 1")
    events: Iterable[dict[str, Any]]
    events, truth = simulate(campaigns, creatives, duration_ms, seed)
    if interval_ms:
        events = aggregated(events, interval_ms)
    if out:
        truth_path = Path(out).with_suffix(".truth.json")
        with open(out, "wb") as sink:
            n = 0
            for event in events:
                sink.write(orjson.dumps(event) + b"\n")
                n += 1
        truth_path.write_bytes(orjson.dumps(truth.to_dict(), option=orjson.OPT_INDENT_2))
        print(f"wrote {n} events to {out}, ground truth to {truth_path}", file=sys.stderr)
        return 0
    assert to_kafka
    keyed = ((e["campaign_id"].encode(), orjson.dumps(e)) for e in events)
    report = asyncio.run(produce_lines(settings, keyed, topic=settings.input_topic,
                                       rate=rate, batch_size=100))
    print(report.summary(), file=sys.stderr)  # failures name event indices, 1 = the first event
    return 0 if report.ok else 1
