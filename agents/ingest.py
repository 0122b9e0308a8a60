"""The ingest agent: every message of the input topic is decoded, and each of its events is either
applied by the pipeline, forwarded to the partition that owns its campaign, or dead-lettered.

This is the one place that catches per event: Faust acks an event even when the agent body raises,
so an exception escaping here would lose it.  Nothing is ever acked without having been applied,
forwarded or written to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from itertools import repeat
from typing import Any, cast

import faust
import orjson

from agents.app import App, FetchedRecords, Record, SnapshottingConsumer, stop_undelivered
from agents.kafka import owner_partition
from agents.topics import raw_topic
from streams import metrics
from streams.config import Settings
from streams.events import (
    Batch,
    Line,
    Reason,
    Rejected,
    SocialEvent,
    decode_record,
    lines_of,
)
from streams.pipeline import Pipeline
from streams.state import Position

log = logging.getLogger(__name__)


class Ingest:
    """Holds the topics and the pipeline; ``handle`` processes the records of one fetch."""

    def __init__(self, app: App, settings: Settings, pipeline: Pipeline) -> None:
        self.app = app
        self.settings = settings
        self.pipeline = pipeline
        self.partitions = settings.partitions
        self.source = raw_topic(app, settings.input_topic, settings.partitions)
        self.dlq = raw_topic(app, settings.dlq_topic, settings.partitions)
        self.recommendations = raw_topic(app, settings.recommendations_topic, settings.partitions)

    async def handle(self, partition: int, records: Sequence[Record]) -> None:
        """Apply, forward or dead-letter every event of ``records`` (consecutive records of one
        partition), then queue their outputs."""
        metrics.MESSAGES.inc(len(records))
        started = time.perf_counter()
        decoded = [decode_record(record.value) for record in records]
        split = time.perf_counter()
        foreign: dict[tuple[int, str], list[bytes]] = defaultdict(list)  # (record, campaign)
        rejected: list[tuple[Record, Line, Rejected]] = []
        events: list[SocialEvent] = []
        positions: list[Position] = []
        partitions = self.partitions
        for index, (record, lines) in enumerate(zip(records, decoded, strict=True)):
            offset = record.offset
            if isinstance(lines, SocialEvent):  # a valid single event: most messages
                if owner_partition(lines.campaign_id, partitions) == partition:
                    events.append(lines)
                    positions.append((offset, 0))
                    continue
                lines = lines_of(record.value, lines)
            elif isinstance(lines, Batch):  # every line a valid event: all of them here, usually
                if all(owner_partition(c, partitions) == partition
                       for c in {event.campaign_id for event in lines.events}):
                    events.extend(lines.events)
                    positions.extend(zip(repeat(offset), range(1, len(lines.events) + 1)))
                    continue
                lines = lines.lines()
            for line in lines:
                event = line.result
                if isinstance(event, Rejected):
                    rejected.append((record, line, event))
                    continue
                campaign_id = event.campaign_id
                if owner_partition(campaign_id, partitions) != partition:
                    foreign[index, campaign_id].append(line.raw)
                    continue
                events.append(event)
                positions.append((offset, line.number))
        done = self.pipeline.process_many(events, positions)
        if done.failed:  # a bug in a later stage: keep the event, visibly
            rejected.extend(_failures(records, decoded, events, positions, done.failed))
            rejected.sort(key=lambda r: (r[0].offset, r[1].number))
        if done.duplicates:
            metrics.DUPLICATES.inc(done.duplicates)
        for state, examples in done.examples:  # to the trainer with the state's next snapshot
            self.pipeline.store.emit(state, [e.to_bytes() for e in examples])
            for example in examples:
                metrics.TRAINING_EXAMPLES_BY_KIND[example.kind].inc()
        for label, n in done.labels.items():
            metrics.LABEL_OUTCOMES[label].inc(n)
        processed = time.perf_counter()
        for etype, n in done.applied.items():  # one increment per type per unit
            metrics.EVENTS_BY_TYPE[etype].inc(n)
        for record, line, why in rejected:
            await self.dead_letter(record, line, why)
        for (index, campaign_id), raws in foreign.items():
            await self.forward(records[index], campaign_id, raws)
        for rec in done.recommendations:  # before these records' offsets can be committed
            metrics.RECOMMENDATIONS[rec.action, rec.reason].inc()
            metrics.CONFIDENCE[rec.action].observe(rec.confidence)
            await self._send(self.recommendations, rec.campaign_id.encode(),
                             orjson.dumps(rec.to_dict()), partition=partition)
        finished = time.perf_counter()
        metrics.STAGE["decode"].observe(split - started)
        metrics.STAGE["pipeline"].observe(processed - split)
        metrics.STAGE["outputs"].observe(finished - processed)
        now = time.time()
        metrics.observe_many(metrics.PROCESSING_LATENCY,
                             [max(0.0, now - record.timestamp / 1000)
                              for record in records if record.timestamp])
        if done.latest_ts_ms:
            metrics.EVENT_TIME_LAG.set(now - done.latest_ts_ms / 1000)
        metrics.LAST_PROCESSED.set(now)

    async def forward(self, record: Record, campaign_id: str, raws: list[bytes]) -> None:
        """Send events to the partition that owns their campaign, keyed by campaign_id."""
        metrics.REROUTED.inc(len(raws))
        await self._send(self.source, campaign_id.encode(), b"\n".join(raws),
                         partition=owner_partition(campaign_id, self.partitions),
                         headers=_source_headers(record))

    async def dead_letter(self, record: Record, line: Line, rejected: Rejected) -> None:
        """Original key and bytes unchanged; the why and the where go in headers."""
        metrics.DEAD_LETTERS_BY_REASON[rejected.reason].inc()
        headers = [("error.reason", rejected.reason.value.encode()),
                   ("error.detail", rejected.detail.encode("utf-8", "backslashreplace")),
                   *_source_headers(record)]
        if line.number:
            headers.append(("source.line", str(line.number).encode()))
        await self._send(self.dlq, record.key, line.raw, headers=headers)

    async def _send(self, topic: faust.TopicT, key: bytes | None, value: bytes,
                    **kwargs: Any) -> None:
        # Every commit awaits these deliveries before it writes the snapshots that mark their
        # source applied; a failure stops the worker at once, before any such commit.
        sent = cast(asyncio.Future[Any], await topic.send(key=key, value=value, **kwargs))
        sent.add_done_callback(_exit_on_failure)
        self.app.pending_outputs.append(sent)


def _failures(records: Sequence[Record], decoded: list[SocialEvent | Batch | list[Line]],
              events: list[SocialEvent],
              positions: list[Position], failed: list[tuple[int, Exception]]
              ) -> list[tuple[Record, Line, Rejected]]:
    """The events whose processing raised, with the record and line each came from."""
    by_offset = {record.offset: (record, lines_of(record.value, lines))
                 for record, lines in zip(records, decoded, strict=True)}
    out = []
    for index, exc in failed:
        log.error("pipeline failed on event %s", events[index].event_id, exc_info=exc)
        offset, number = positions[index]
        record, lines = by_offset[offset]
        [line] = [line for line in lines if line.number == number]
        out.append((record, line, Rejected(Reason.INTERNAL_ERROR,
                                           f"{type(exc).__name__}: {exc}"[:500])))
    return out


def _source_headers(record: Record) -> list[tuple[str, bytes]]:
    headers = dict(record.headers or ())
    if "source.topic" in headers:  # a forwarded event keeps the address of its first arrival
        return [(k, headers[k]) for k in ("source.topic", "source.partition", "source.offset")]
    return [("source.topic", record.topic.encode()),
            ("source.partition", str(record.partition).encode()),
            ("source.offset", str(record.offset).encode())]


def _exit_on_failure(fut: Any) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        stop_undelivered(fut.exception())


def attach(app: App, settings: Settings, pipeline: Pipeline) -> Ingest:
    """Register the ingest agent on ``app``."""
    ingest = Ingest(app, settings, pipeline)

    async def ingest_agent(stream: faust.StreamT[bytes]) -> None:
        consumer = cast(SnapshottingConsumer, app.consumer)
        async for event in stream.events():
            unit = cast(FetchedRecords, event.message)
            records = await consumer.admit(unit)
            if records:
                async with app.processing:
                    await ingest.handle(unit.partition, records)
                    consumer.handled(unit)

    app.sequenced_topics.add(settings.input_topic)
    app.agent(ingest.source, name="ingest")(ingest_agent)
    return ingest
