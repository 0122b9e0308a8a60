"""Offline replay: the same pipeline and trainer over a recorded event file, without Kafka.

Analysts use it to see what the service would have done and how well its models did; the tests
use it as the oracle a worker must agree with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.events import Rejected, decode
from streams.pipeline import Pipeline
from streams.training import Trainer


@dataclass
class ReplayResult:
    pipeline: Pipeline
    trainer: Trainer
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    recommendations: Counter[str] = field(default_factory=Counter)

    def report(self) -> dict[str, Any]:
        models = self.trainer.models.report()
        return {"sentiment": models["sentiment"], "post_engagement": models["post_engagement"],
                "creative_ctr": models["creative_ctr"],
                "models": {"version": models["version"], "lineage": models["lineage"]},
                "events": {"accepted": self.accepted, "rejected": sum(self.rejected.values()),
                           "rejected_by_reason": dict(self.rejected),
                           "duplicates": self.duplicates},
                "recommendations": dict(sorted(self.recommendations.items())),
                "campaigns": len(self.pipeline.store.campaigns)}


def replay(lines: Iterable[bytes], emit: Callable[[bytes], object] | None = None,
           progress: Callable[[int], None] | None = None) -> ReplayResult:
    """Decode, process and learn every line in order; ``emit`` receives each output as a JSON
    line: every recommendation, as the worker publishes it."""
    trainer = Trainer()
    result = ReplayResult(Pipeline(trainer.models), trainer)
    for number, raw in enumerate(lines, start=1):
        if progress is not None and number % 10_000 == 0:
            progress(number)
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        event = decode(line)
        if isinstance(event, Rejected):
            result.rejected[event.reason.value] += 1
            continue
        outcome = result.pipeline.process(event)
        if not outcome.applied:
            result.duplicates += 1
            continue
        result.accepted += 1
        for example in outcome.examples:
            trainer.learn(example)
        for rec in outcome.recommendations:
            result.recommendations[rec.action] += 1
            if emit is not None:
                emit(orjson.dumps(rec.to_dict()))
    return result
