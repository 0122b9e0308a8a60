"""One learning lineage across workers: the trainer agent and the model follower.

- Ingest sends every labelled example to the single-partition training topic.  Whichever worker
  owns that partition runs the trainer: it learns the examples in offset order, and before each
  commit publishes a snapshot (models, recently seen example ids, the offset it covers) to the
  compacted model topic.  A new owner restores the latest snapshot and skips what it covers.
- Every worker follows the model topic and swaps each new snapshot's models in for scoring.
- Snapshots are data only (streams/model_snapshot.py): nothing read from the topic is unpickled
  or run; an unreadable, unknown-version or oversized one is refused with a log line and a metric,
  and the worker keeps the models it has.
- A worker that (re)gains the training partition restores from the newest snapshot first: what it
  learned before it lost the partition may have been continued by another owner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.app import App, FetchedRecords, Record, SnapshottingConsumer
from agents.kafka import MAX_MODEL_BYTES, client_options
from agents.topics import raw_topic
from streams import metrics
from streams.config import Settings
from streams.model_snapshot import SnapshotRefused, dump, load
from streams.pipeline import Pipeline
from streams.training import Example, Models, Trainer, unpack_examples

log = logging.getLogger(__name__)
RESTORE_LOOKBACK = 16  # snapshots looked at, newest first, for one this worker can read
# A commit's examples reach the trainer at once (2,600 at 58,000 events/s, 75 µs each).  Learnt
# flat out they took a quarter of the core for most of a second, and with ingest near capacity
# every commit was followed by a latency spike; the trainer therefore learns what the log holds
# for it at an even pace, done LEARN_SPREAD after the newest examples arrived.  That is well
# before the next commit (Faust commits every 2.8 s), which publishes them: models are no staler.
LEARN_SPREAD = 2.0  # seconds


def unpack(data: bytes, offset: int) -> tuple[Trainer, int] | None:
    """A snapshot's trainer and training offset, or None (logged and counted) if refused."""
    try:
        return load(data)
    except SnapshotRefused as exc:
        metrics.MODEL_SNAPSHOTS_REFUSED.labels(reason=exc.reason).inc()
        log.error("refused the model snapshot at offset %s of the model topic: %s", offset, exc)
        return None


def export(models: Models) -> None:
    """The scoring models' versions and progressive quality, as metrics."""
    report = models.report()
    for name, version in models.versions().items():
        metrics.MODEL_VERSION.labels(model=name).set(version)
    for name in ("sentiment", "post_engagement", "creative_ctr"):
        for metric, value in report[name].items():
            if metric != "n":
                metrics.MODEL_QUALITY.labels(model=name, metric=metric).set(value)


class Pace:
    """When to learn the next message so that what the training partition holds is learnt
    evenly, done LEARN_SPREAD seconds after its end last moved (a new end, a new deadline)."""

    def __init__(self) -> None:
        self.end = 0  # the partition's end when the deadline was set
        self.deadline = 0.0  # monotonic seconds

    def pause(self, end: int | None, learnt: int, began: float, now: float) -> float:
        """Seconds to wait before the next message (up to 16 examples, about a ms): the one begun
        at ``began`` takes its share of the time left for the messages after offset ``learnt``,
        the last one learnt."""
        if end is not None and end > self.end:
            self.end, self.deadline = end, now + LEARN_SPREAD
        left = self.end - learnt  # messages unlearnt when the last one began
        if left <= 1 or began >= self.deadline:
            return 0.0
        return max(0.0, began + (self.deadline - began) / left - now)


class Training:
    def __init__(self, app: App, settings: Settings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.examples = raw_topic(app, settings.training_topic, 1)
        self.app = app
        self.trainer: Trainer | None = None
        self.offset = -1
        self.dirty = False
        self.learning = asyncio.Lock()  # held while the trainer learns a message
        self.pace = Pace()
        app.sequenced_topics.add(settings.training_topic)
        app.agent(self.examples, name="trainer")(self.learn)
        app.before_commit.append(self.publish)
        app.on_partitions_assigned.connect(self.on_assigned)  # type: ignore[arg-type]
        app.task(self.follow)

    async def on_assigned(self, app: faust.App, assigned: set[Any], **_: Any) -> None:
        """Without the training partition, forget the trainer: its next owner continues it, and
        this worker restores the newest snapshot if the partition comes back."""
        if not any(tp.topic == self.settings.training_topic for tp in assigned):
            self.trainer, self.offset, self.dirty = None, -1, False

    async def learn(self, stream: faust.StreamT[bytes]) -> None:
        consumer = cast(SnapshottingConsumer, self.app.consumer)
        async for event in stream.events():
            unit = cast(FetchedRecords, event.message)
            records = await consumer.admit(unit)
            if not records:
                continue
            if self.trainer is None:
                self.trainer, self.offset = await self.restore()
            trainer, began = self.trainer, time.monotonic()
            # The partition's end as last fetched (an assertion fails once it is not assigned).
            end = consumer.highwater(unit.tp) if unit.tp in consumer.assignment() else None
            for i, record in enumerate(records):
                if i:
                    await asyncio.sleep(self.pace.pause(end, self.offset, began, time.monotonic()))
                began = time.monotonic()
                async with self.learning:  # a snapshot is taken between two messages
                    if self.trainer is not trainer:
                        break  # the partition moved on: its new owner continues
                    self._learn(trainer, record)
            else:
                consumer.handled(unit)

    def _learn(self, trainer: Trainer, record: Record) -> None:
        if record.offset <= self.offset:
            return  # covered by the snapshot this trainer started from
        for example in unpack_examples(record.value or b""):
            try:
                trainer.learn(Example.from_bytes(example))
            except Exception:  # a malformed example must not stop learning
                log.exception("skipping a training example at offset %s", record.offset)
        self.offset = record.offset
        self.dirty = True

    async def restore(self) -> tuple[Trainer, int]:
        found = await latest(self.settings)
        if found is None:
            log.info("no model snapshot to restore: the trainer starts from new models")
            return Trainer(), -1
        trainer, offset = found
        log.info("trainer restored at model version %s (training offset %s)",
                 trainer.models.version, offset)
        return trainer, offset

    def publish(self) -> Awaitable[object]:
        """Before a commit: a snapshot that covers the examples being committed (and maybe
        later ones, which is harmless: a trainer restored from it skips what it covers); the
        awaitable returned completes when the broker holds it."""
        if not self.dirty or self.trainer is None:
            return asyncio.sleep(0)
        self.dirty = False
        return self._publish(self.trainer)

    async def _publish(self, trainer: Trainer) -> None:
        # Packed in a thread (tens of ms for a trained model), not on the event loop, while the
        # trainer waits between two units; scoring meanwhile uses models of its own.
        async with self.learning:
            if trainer is not self.trainer:
                return  # the training partition moved on meanwhile: its new owner publishes
            data = await asyncio.to_thread(dump, trainer, self.offset)
        await self._send(data)

    async def _send(self, data: bytes) -> None:
        sent = await self.app.producer.send(self.settings.model_topic, b"models", data, 0,
                                            None, None)
        await sent

    async def follow(self) -> None:
        """Score with the newest readable snapshot, then swap in each one published, forever."""
        try:
            found = await latest(self.settings)
        except TimeoutError as exc:  # scoring starts from new models until the next snapshot
            log.warning("%s", exc)
            found = None
        if found is not None:
            self.use(found[0].models)
        consumer = AIOKafkaConsumer(**client_options(self.settings), group_id=None,
                                    enable_auto_commit=False,
                                    max_partition_fetch_bytes=MAX_MODEL_BYTES,
                                    fetch_max_bytes=MAX_MODEL_BYTES)
        await consumer.start()
        try:
            tp = TopicPartition(self.settings.model_topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, (await consumer.end_offsets([tp]))[tp])
            while True:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in reversed(batch.get(tp, [])):  # the newest readable one
                    snapshot = await asyncio.to_thread(unpack, record.value, record.offset)
                    if snapshot is not None:
                        self.use(snapshot[0].models)
                        break
        finally:
            await consumer.stop()

    def use(self, models: Models) -> None:
        """Score with these models from now on."""
        self.pipeline.models = models
        export(models)


async def latest(settings: Settings) -> tuple[Trainer, int] | None:
    """The newest model snapshot this worker can read (a refused one is logged and counted, and
    the one before it is used), or None if none was ever published."""
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
        consumer.seek(tp, max(end - RESTORE_LOOKBACK, 0))
        records: list[Any] = []
        for _ in range(60):
            batch = await consumer.getmany(tp, timeout_ms=1000)
            records.extend(batch.get(tp, []))
            if await consumer.position(tp) >= end:
                break
            await asyncio.sleep(0)
        else:
            raise TimeoutError(f"could not read the latest snapshot of {settings.model_topic}")
        for record in reversed(records):
            found = await asyncio.to_thread(unpack, bytes(record.value), record.offset)
            if found is not None:
                return found
        log.critical("no readable model snapshot among the last %s of %s: the trainer starts "
                     "from new models", len(records), settings.model_topic)
        return None
    finally:
        await consumer.stop()
