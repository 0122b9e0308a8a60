"""Gauges sampled every few seconds rather than per event: readiness with its reasons, consumer lag
per owned input partition, the number of campaigns in memory; and the build info, set once.

Ready means making progress (DESIGN.md section 6).  The lag is measured against the log's end as
the broker reports it now (Faust's own high watermark only moves when its fetches succeed, so a
stuck consumer reads a lag of 0), and a partition with input waiting whose next offset has not
moved for ``STALL_SECONDS`` makes the worker unready, as does an input topic whose partition
count no longer matches the configuration (a broker that came back empty and auto-created it).
"""

from __future__ import annotations

import asyncio
import logging
import platform
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, cast

from agents.app import App, SnapshottingConsumer
from streams import metrics
from streams.config import Settings
from streams.pipeline import Pipeline

log = logging.getLogger(__name__)
SAMPLE_SECONDS = 5.0
STALL_SECONDS = 30.0
REASONS = ("recovering", "unassigned", "stalled", "partitions_mismatch", "broker_unreachable")


@dataclass
class Readiness:
    """The reasons the worker is not ready, as last sampled (recovering until the first sample)."""

    reasons: set[str] = field(default_factory=lambda: {"recovering"})
    # partition -> (next offset, monotonic time it was first seen there)
    progress: dict[int, tuple[int, float]] = field(default_factory=dict)

    def stalled(self, partition: int, position: int, lag: int, now: float) -> bool:
        """Input waits and the position has not moved for STALL_SECONDS."""
        last = self.progress.get(partition)
        if last is None or last[0] != position or lag <= 0:
            self.progress[partition] = (position, now)
            return False
        return now - last[1] > STALL_SECONDS


def is_ready(app: App) -> bool:
    """What /readyz and socialstream_ready report."""
    readiness: Readiness | None = getattr(app, "readiness", None)
    return readiness is not None and not readiness.reasons


async def sample_readiness(app: App, settings: Settings, readiness: Readiness) -> set[str]:
    """The reasons the worker is not ready now; sets the lag gauges of owned partitions."""
    consumer = cast(SnapshottingConsumer, app.consumer)
    reasons: set[str] = set()
    recovered: bool = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
    if not recovered:
        reasons.add("recovering")
    owned = sorted(tp.partition for tp in consumer.assignment()
                   if tp.topic == settings.input_topic)
    if not owned:
        reasons.add("unassigned")
        return reasons
    try:
        count = await asyncio.wait_for(consumer.probe.partition_count(settings.input_topic), 10)
    except Exception as exc:  # any failure to reach the broker: the same answer
        log.warning("readiness: cannot read the input topic's metadata: %r", exc)
        reasons.add("broker_unreachable")
        return reasons
    if count != settings.partitions:  # e.g. a broker that came back empty and auto-created it
        reasons.add("partitions_mismatch")
        return reasons
    try:
        ends = await asyncio.wait_for(
            consumer.probe.end_offsets(settings.input_topic, owned), 10)
    except Exception as exc:
        log.warning("readiness: cannot read the input topic's end offsets: %r", exc)
        reasons.add("broker_unreachable")
        return reasons
    now = time.monotonic()
    for partition in owned:
        tp: Any = next(tp for tp in consumer.assignment()
                       if tp.topic == settings.input_topic and tp.partition == partition)
        position = consumer.next_offset(tp)
        if position is None:
            continue
        lag = max(0, ends[partition] - position)
        still = readiness.progress.get(partition, (None, 0.0))[0] == position
        if lag and still and await asyncio.wait_for(consumer.probe.is_real_gap(
                tp.topic, partition, position, ends[partition]), 30):
            lag = 0  # only transaction markers (or deleted records) left before the end
        metrics.CONSUMER_LAG.labels(partition=str(partition)).set(lag)
        if readiness.stalled(partition, position, lag, now):
            reasons.add("stalled")
    return reasons


def attach(app: App, settings: Settings, pipeline: Pipeline) -> None:
    metrics.BUILD_INFO.info({
        "version": version("socialstream"), "python": platform.python_version(),
        **{lib.replace("-", "_"): version(lib) for lib in ("faust-streaming", "river", "aiokafka")},
    })
    readiness = Readiness()
    app.readiness = readiness  # type: ignore[attr-defined]
    reported: set[str] = set()

    @app.timer(SAMPLE_SECONDS)  # type: ignore[untyped-decorator]
    async def sample() -> None:
        metrics.ACTIVE_CAMPAIGNS.set(len(pipeline.store.campaigns))
        try:
            reasons = await sample_readiness(app, settings, readiness)
        except Exception as exc:  # a probe that timed out: the broker did not answer in time
            log.warning("readiness: could not sample: %r", exc)
            reasons = {"broker_unreachable"}
        if reasons != readiness.reasons:
            log.info("readiness: %s", "ready" if not reasons else
                     "not ready (" + ", ".join(sorted(reasons)) + ")")
        readiness.reasons = reasons
        metrics.READY.set(float(not reasons))
        for reason in REASONS:
            metrics.UNREADY.labels(reason=reason).set(float(reason in reasons))
        consumer = cast(SnapshottingConsumer, app.consumer)
        now = {str(tp.partition) for tp in consumer.assignment()
               if tp.topic == settings.input_topic}
        for partition in reported - now:  # moved to another worker: its lag is reported there
            metrics.CONSUMER_LAG.remove(partition)
        reported.clear()
        reported.update(now)
