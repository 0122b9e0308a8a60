"""Gauges sampled every few seconds rather than per event: consumer lag per owned input
partition and the number of campaigns in memory; and the build info, set once."""

from __future__ import annotations

import platform
from importlib.metadata import version
from typing import cast

from agents.app import App, SnapshottingConsumer
from streams import metrics
from streams.config import Settings
from streams.pipeline import Pipeline

SAMPLE_SECONDS = 5.0


def is_ready(app: App) -> bool:
    """State recovered and partitions assigned: what /readyz and socialstream_ready report."""
    recovered: bool = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
    return recovered and bool(app.consumer.assignment())


def attach(app: App, settings: Settings, pipeline: Pipeline) -> None:
    metrics.BUILD_INFO.info({
        "version": version("socialstream"), "python": platform.python_version(),
        **{lib.replace("-", "_"): version(lib) for lib in ("faust-streaming", "river", "aiokafka")},
    })

    reported: set[int] = set()

    @app.timer(SAMPLE_SECONDS)  # type: ignore[untyped-decorator]
    async def sample() -> None:
        metrics.ACTIVE_CAMPAIGNS.set(len(pipeline.store.campaigns))
        consumer = cast(SnapshottingConsumer, app.consumer)
        metrics.READY.set(float(is_ready(app)))
        owned = {tp for tp in consumer.assignment() if tp.topic == settings.input_topic}
        for tp in owned:
            highwater, position = consumer.highwater(tp), consumer.next_offset(tp)
            if highwater is not None and position is not None:
                metrics.CONSUMER_LAG.labels(partition=str(tp.partition)).set(
                    max(0, highwater - position))
        now = {tp.partition for tp in owned}
        for partition in reported - now:  # moved to another worker: its lag is reported there
            metrics.CONSUMER_LAG.remove(str(partition))
        reported.clear()
        reported.update(now)
