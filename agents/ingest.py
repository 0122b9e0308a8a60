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
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, cast

import faust
import orjson

from agents.app import App, FetchedRecords, Record, SnapshottingConsumer, stop_undelivered
from agents.kafka import owner_partition
from agents.topics import raw_topic
from streams import metrics
from streams.config import Settings
from streams.events import Line, Reason, Rejected, decode_message
from streams.pipeline import Pipeline
from streams.policy import Recommendation

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
        decoded = [decode_message(record.value) for record in records]
        split = time.perf_counter()
        foreign: dict[tuple[int, str], list[bytes]] = defaultdict(list)  # (record, campaign)
        rejected: list[tuple[Record, Line, Rejected]] = []
        applied: Counter[str] = Counter()  # one counter increment per type per unit
        recommendations: list[Recommendation] = []
        examples: Counter[str] = Counter()
        latest_ts_ms = 0
        process = self.pipeline.process
        for index, (record, lines) in enumerate(zip(records, decoded, strict=True)):
            for line in lines:
                event = line.result
                if isinstance(event, Rejected):
                    rejected.append((record, line, event))
                    continue
                if owner_partition(event.campaign_id, self.partitions) != partition:
                    foreign[index, event.campaign_id].append(line.raw)
                    continue
                try:
                    outcome = process(event, (record.offset, line.number))
                except Exception as exc:  # a bug in a later stage: keep the event, visibly
                    log.exception("pipeline failed on event %s", event.event_id)
                    rejected.append((record, line, Rejected(
                        Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"[:500])))
                    continue
                if not outcome.applied:
                    metrics.DUPLICATES.inc()
                    continue
                applied[event.type] += 1
                if event.ts_ms > latest_ts_ms:
                    latest_ts_ms = event.ts_ms
                if outcome.examples:  # sent to the trainer with the state's next snapshot
                    store = self.pipeline.store
                    store.emit(store.campaigns[event.campaign_id],
                               [e.to_bytes() for e in outcome.examples])
                    for example in outcome.examples:
                        examples[example.kind] += 1
                if event.sentiment is not None:
                    _count_label(event.type, bool(outcome.examples))
                if outcome.recommendations:
                    recommendations.extend(outcome.recommendations)
        processed = time.perf_counter()
        for etype, n in applied.items():
            metrics.EVENTS_BY_TYPE[etype].inc(n)
        for kind, n in examples.items():
            metrics.TRAINING_EXAMPLES_BY_KIND[kind].inc(n)
        for record, line, why in rejected:
            await self.dead_letter(record, line, why)
        for (index, campaign_id), raws in foreign.items():
            await self.forward(records[index], campaign_id, raws)
        for rec in recommendations:  # before these records' offsets can be committed
            metrics.RECOMMENDATIONS[rec.action, rec.reason].inc()
            metrics.CONFIDENCE[rec.action].observe(rec.confidence)
            await self._send(self.recommendations, rec.campaign_id.encode(),
                             orjson.dumps(rec.to_dict()), partition=partition)
        done = time.perf_counter()
        metrics.STAGE["decode"].observe(split - started)
        metrics.STAGE["pipeline"].observe(processed - split)
        metrics.STAGE["outputs"].observe(done - processed)
        now = time.time()
        observe = metrics.PROCESSING_LATENCY.observe
        for record in records:
            if record.timestamp:
                observe(max(0.0, now - record.timestamp / 1000))
        if latest_ts_ms:
            metrics.EVENT_TIME_LAG.set(now - latest_ts_ms / 1000)

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


def _count_label(event_type: str, learned: bool) -> None:
    if event_type == "label":
        metrics.LABEL_OUTCOMES["joined" if learned else "orphaned"].inc()
    else:
        metrics.LABEL_OUTCOMES["inline"].inc()


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
            records = await consumer.admit(cast(FetchedRecords, event.message))
            if records:
                async with app.processing:
                    await ingest.handle(event.message.partition, records)

    app.sequenced_topics.add(settings.input_topic)
    app.agent(ingest.source, name="ingest")(ingest_agent)
    return ingest
