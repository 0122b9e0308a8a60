"""What a partition's log really holds, asked of the broker directly, outside Faust.

Offsets in a Kafka log are not contiguous: commit and abort markers of transactional producers,
records of aborted transactions (invisible to a ``read_committed`` reader), compaction, retention
and DeleteRecords all leave gaps.  When the ingest agent is handed a message past the offset it
expected, the gap is either one of those (nothing to read there: go on) or messages that Faust
dropped around a rebalance (read them again).  ``LogProbe`` tells them apart by fetching from the
expected offset with its own group-less ``read_committed`` consumer: if the first record there is
the one the agent was handed, the gap is real.  What one fetch shows is remembered, so a topic full
of small transactions costs one probe per fetch-sized stretch of log, not one per transaction.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.kafka import client_options
from streams.config import Settings

log = logging.getLogger(__name__)


@dataclass
class Seen:
    """A stretch of one partition's log as a probe saw it: every readable record offset in
    [start, end)."""

    start: int
    end: int
    offsets: list[int] = field(default_factory=list)

    def empty_between(self, low: int, high: int) -> bool | None:
        """Whether no readable record lies in [low, high); None when this stretch cannot say."""
        if not (self.start <= low and high <= self.end):
            return None
        return not any(low <= o < high for o in self.offsets)


class LogProbe:
    """A group-less ``read_committed`` consumer used only to look at logs; started lazily."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()
        self._seen: dict[Any, Seen] = {}

    async def _client(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(**client_options(self.settings), group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        isolation_level="read_committed")
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def is_real_gap(self, topic: str, partition: int, low: int, high: int) -> bool:
        """True when no record a ``read_committed`` reader can see lies at offsets [low, high)
        of the partition (markers, aborted records, compaction, a log start moved past low)."""
        return await self.first_readable(topic, partition, low, high) is None

    async def first_readable(self, topic: str, partition: int, low: int, high: int) -> int | None:
        """The first offset in [low, high) holding a record a ``read_committed`` reader sees,
        or None when there is none (or the log could not be read that far: then [low, high) is
        taken as holding records only if one was seen)."""
        tp = TopicPartition(topic, partition)
        seen = self._seen.get(tp)
        # Only "empty" is taken from memory: gaps only ever grow (compaction, deletion), so a
        # stretch once seen holding records is looked at again.
        if seen is not None and seen.empty_between(low, high):
            return None
        async with self._lock:
            seen = await asyncio.wait_for(self._read_from(tp, low), 30)
        self._seen[tp] = seen
        if seen.empty_between(low, high):
            return None
        return next((o for o in seen.offsets if low <= o < high), low)

    async def _read_from(self, tp: TopicPartition, offset: int) -> Seen:
        consumer = await self._client()
        consumer.assign([tp])
        consumer.seek(tp, offset)
        records: list[Any] = []
        for _ in range(10):  # an empty answer is normal while the fetch is under way
            records = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
            if records:
                break
        if not records:
            return Seen(offset, offset)
        # The first record was fetched from `offset`, or from the log start if `offset` was
        # below it (auto_offset_reset): nothing readable lies before it either way.
        return Seen(offset, records[-1].offset + 1, [r.offset for r in records])

    async def end_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """The last stable offset of each partition (the end a read_committed reader sees)."""
        tps = [TopicPartition(topic, p) for p in partitions]
        async with self._lock:
            consumer = await self._client()
            ends = await consumer.end_offsets(tps)
        return {tp.partition: offset for tp, offset in ends.items()}

    async def partition_count(self, topic: str) -> int:
        """Partitions of ``topic`` in fresh metadata (0 when the topic does not exist)."""
        async with self._lock:
            consumer = await self._client()
            cluster = await consumer._client.fetch_all_metadata()
        return len(cluster.partitions_for_topic(topic) or ())

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
