"""One learning lineage across workers: the trainer agent and the model follower.

- Ingest sends every labelled example to the single-partition training topic.  Whichever worker
  owns that partition runs the trainer: it learns the examples in offset order, and before each
  commit publishes a snapshot (models, recently seen example ids, the offset it covers) to the
  compacted model topic.  A new owner restores the latest snapshot and skips what it covers.
- Every worker follows the model topic and swaps each new snapshot's models in for scoring.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import zlib
from collections.abc import Awaitable
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.app import App, SnapshottingConsumer
from agents.kafka import MAX_MODEL_BYTES, client_options
from agents.topics import raw_topic
from streams import metrics
from streams.config import Settings
from streams.pipeline import Pipeline
from streams.training import Example, Models, Trainer

log = logging.getLogger(__name__)


def pack(trainer: Trainer, offset: int) -> bytes:
    return zlib.compress(pickle.dumps({"trainer": trainer, "offset": offset},
                                      protocol=pickle.HIGHEST_PROTOCOL), 1)


def unpack(data: bytes) -> tuple[Trainer, int]:
    snapshot = pickle.loads(zlib.decompress(data))
    return snapshot["trainer"], int(snapshot["offset"])


def export(models: Models) -> None:
    """The scoring models' versions and progressive quality, as metrics."""
    report = models.report()
    for name, version in models.versions().items():
        metrics.MODEL_VERSION.labels(model=name).set(version)
    for name in ("sentiment", "post_engagement", "creative_ctr"):
        for metric, value in report[name].items():
            if metric != "n":
                metrics.MODEL_QUALITY.labels(model=name, metric=metric).set(value)


class Training:
    def __init__(self, app: App, settings: Settings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.examples = raw_topic(app, settings.training_topic, 1)
        self.app = app
        self.trainer: Trainer | None = None
        self.offset = -1
        self.dirty = False
        app.sequenced_topics.add(settings.training_topic)
        app.agent(self.examples, name="trainer")(self.learn)
        app.before_commit.append(self.publish)
        app.task(self.follow)

    async def learn(self, stream: faust.StreamT[bytes]) -> None:
        consumer = cast(SnapshottingConsumer, self.app.consumer)
        async for event in stream.events():
            message = event.message
            if not await consumer.in_sequence(message.tp, message.offset):
                continue
            if self.trainer is None:
                self.trainer, self.offset = await self.restore()
            if message.offset <= self.offset:
                continue  # covered by the snapshot this trainer started from
            try:
                self.trainer.learn(Example.from_bytes(message.value))
            except Exception:  # a malformed example must not stop learning
                log.exception("skipping training example at offset %s", message.offset)
            self.offset = message.offset
            self.dirty = True

    async def restore(self) -> tuple[Trainer, int]:
        data = await latest(self.settings)
        if data is None:
            return Trainer(), -1
        trainer, offset = unpack(data)
        log.info("trainer restored at model version %s (training offset %s)",
                 trainer.models.version, offset)
        return trainer, offset

    def publish(self) -> Awaitable[object]:
        """Before a commit: the snapshot that covers the examples being committed, taken now;
        the awaitable returned completes when the broker holds it."""
        if not self.dirty or self.trainer is None:
            return asyncio.sleep(0)
        self.dirty = False
        return self._send(pack(self.trainer, self.offset))

    async def _send(self, data: bytes) -> None:
        sent = await self.app.producer.send(self.settings.model_topic, b"models", data, 0,
                                            None, None)
        await sent

    async def follow(self) -> None:
        """Swap in every model snapshot published, oldest first, forever."""
        consumer = AIOKafkaConsumer(**client_options(self.settings), group_id=None,
                                    enable_auto_commit=False,
                                    max_partition_fetch_bytes=MAX_MODEL_BYTES,
                                    fetch_max_bytes=MAX_MODEL_BYTES)
        await consumer.start()
        try:
            tp = TopicPartition(self.settings.model_topic, 0)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            consumer.seek(tp, max(end - 1, 0))
            while True:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                records = batch.get(tp, [])
                if records:
                    self.swap(records[-1].value)
        finally:
            await consumer.stop()

    def swap(self, data: bytes) -> None:
        try:
            trainer, _ = unpack(data)
        except Exception:
            log.exception("ignoring an unreadable model snapshot")
            return
        self.pipeline.models = trainer.models
        export(trainer.models)


async def latest(settings: Settings) -> bytes | None:
    """The newest model snapshot, or None if none was ever published."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None,
                                enable_auto_commit=False,
                                max_partition_fetch_bytes=MAX_MODEL_BYTES,
                                fetch_max_bytes=MAX_MODEL_BYTES)
    await consumer.start()
    try:
        tp = TopicPartition(settings.model_topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        if end == 0:
            return None
        consumer.seek(tp, end - 1)
        for _ in range(30):
            batch = await consumer.getmany(tp, timeout_ms=1000)
            if batch.get(tp):
                value: Any = batch[tp][-1].value
                return bytes(value)
            await asyncio.sleep(0)
        raise TimeoutError(f"could not read the latest snapshot of {settings.model_topic}")
    finally:
        await consumer.stop()
