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
from collections.abc import Mapping
from typing import Any, cast

import faust
import orjson
from faust.types import Message

from agents.app import App, SnapshottingConsumer, stop_undelivered
from agents.kafka import owner_partition
from agents.topics import raw_topic
from streams import metrics
from streams.config import Settings
from streams.events import Line, Reason, Rejected, decode_message
from streams.pipeline import Pipeline
from streams.policy import Recommendation

log = logging.getLogger(__name__)


class Ingest:
    """Holds the topics and the pipeline; ``handle`` processes one Kafka message."""

    def __init__(self, app: App, settings: Settings, pipeline: Pipeline) -> None:
        self.app = app
        self.settings = settings
        self.pipeline = pipeline
        self.partitions = settings.partitions
        self.source = raw_topic(app, settings.input_topic, settings.partitions)
        self.dlq = raw_topic(app, settings.dlq_topic, settings.partitions)
        self.recommendations = raw_topic(app, settings.recommendations_topic, settings.partitions)

    async def handle(self, message: Message) -> None:
        metrics.MESSAGES.inc()
        started = time.perf_counter()
        lines = decode_message(message.value)
        decoded = time.perf_counter()
        foreign: dict[str, list[bytes]] = defaultdict(list)
        rejected: list[tuple[Line, Rejected]] = []
        applied: Counter[str] = Counter()  # one counter increment per type per message
        recommendations: list[Recommendation] = []
        latest_ts_ms = 0
        for line in lines:
            event = line.result
            if isinstance(event, Rejected):
                rejected.append((line, event))
            elif owner_partition(event.campaign_id, self.partitions) != message.partition:
                foreign[event.campaign_id].append(line.raw)
            else:
                try:
                    outcome = self.pipeline.process(event, (message.offset, line.number))
                except Exception as exc:  # a bug in a later stage: keep the event, visibly
                    log.exception("pipeline failed on event %s", event.event_id)
                    rejected.append((line, Rejected(Reason.INTERNAL_ERROR,
                                                    f"{type(exc).__name__}: {exc}"[:500])))
                    continue
                if outcome.applied:
                    applied[event.type] += 1
                    latest_ts_ms = max(latest_ts_ms, event.ts_ms)
                    if outcome.examples:  # sent to the trainer with the state's next snapshot
                        store = self.pipeline.store
                        store.emit(store.campaigns[event.campaign_id],
                                   [e.to_bytes() for e in outcome.examples])
                        for example in outcome.examples:
                            metrics.TRAINING_EXAMPLES.labels(kind=example.kind).inc()
                    if event.sentiment is not None:
                        _count_label(event.type, bool(outcome.examples))
                    recommendations.extend(outcome.recommendations)
                else:
                    metrics.DUPLICATES.inc()
        processed = time.perf_counter()
        for etype, n in applied.items():
            metrics.EVENTS_BY_TYPE[etype].inc(n)
        for line, why in rejected:
            await self.dead_letter(message, line, why)
        for campaign_id, raws in foreign.items():
            await self.forward(message, campaign_id, raws)
        for rec in recommendations:  # before this message's offset can be committed
            metrics.RECOMMENDATIONS[rec.action].inc()
            metrics.CONFIDENCE[rec.action].observe(rec.confidence)
            await self._send(self.recommendations, rec.campaign_id.encode(),
                             orjson.dumps(rec.to_dict()), partition=message.partition)
        done = time.perf_counter()
        metrics.STAGE["decode"].observe(decoded - started)
        metrics.STAGE["pipeline"].observe(processed - decoded)
        metrics.STAGE["outputs"].observe(done - processed)
        now = time.time()
        if message.timestamp:
            metrics.PROCESSING_LATENCY.observe(max(0.0, now - message.timestamp))
        if latest_ts_ms:
            metrics.EVENT_TIME_LAG.set(now - latest_ts_ms / 1000)

    async def forward(self, message: Message, campaign_id: str, raws: list[bytes]) -> None:
        """Send events to the partition that owns their campaign, keyed by campaign_id."""
        metrics.REROUTED.inc(len(raws))
        await self._send(self.source, campaign_id.encode(), b"\n".join(raws),
                         partition=owner_partition(campaign_id, self.partitions),
                         headers=_source_headers(message))

    async def dead_letter(self, message: Message, line: Line, rejected: Rejected) -> None:
        """Original key and bytes unchanged; the why and the where go in headers."""
        metrics.DEAD_LETTERS_BY_REASON[rejected.reason].inc()
        headers = [("error.reason", rejected.reason.value.encode()),
                   ("error.detail", rejected.detail.encode("utf-8", "backslashreplace")),
                   *_source_headers(message)]
        if line.number:
            headers.append(("source.line", str(line.number).encode()))
        await self._send(self.dlq, message.key, line.raw, headers=headers)

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


def _source_headers(message: Message) -> list[tuple[str, bytes]]:
    raw = message.headers or ()
    headers = dict(raw.items() if isinstance(raw, Mapping) else raw)
    if "source.topic" in headers:  # a forwarded event keeps the address of its first arrival
        return [(k, headers[k]) for k in ("source.topic", "source.partition", "source.offset")]
    return [("source.topic", message.topic.encode()),
            ("source.partition", str(message.partition).encode()),
            ("source.offset", str(message.offset).encode())]


def _exit_on_failure(fut: Any) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        stop_undelivered(fut.exception())


def attach(app: App, settings: Settings, pipeline: Pipeline) -> Ingest:
    """Register the ingest agent on ``app``."""
    ingest = Ingest(app, settings, pipeline)

    async def ingest_agent(stream: faust.StreamT[bytes]) -> None:
        consumer = cast(SnapshottingConsumer, app.consumer)
        async for event in stream.events():
            message = event.message
            if await consumer.in_sequence(message.tp, message.offset):
                async with app.processing:
                    await ingest.handle(message)

    app.sequenced_topics.add(settings.input_topic)
    app.agent(ingest.source, name="ingest")(ingest_agent)
    return ingest
