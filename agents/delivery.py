"""Delivery that never lies, for the project's own producers (`produce`, `simulate --to-kafka`,
the demo).

Batches (newline-delimited events that share a key) are how the project's own producers reach
throughput: Faust's cost is per Kafka message, not per event (DESIGN.md section 9).

An event counts only once the broker has acknowledged the message that carries it. At most
``IN_FLIGHT_MESSAGES`` messages (``IN_FLIGHT_EVENTS`` events) are unacknowledged at a time; when
the window is full, sending waits until half of it is acknowledged. The producer is idempotent
and rides out a broker that is away for a minute or so: aiokafka resends a batch it has sent
until the broker answers, and a batch or a ``send`` waits up to ``REQUEST_TIMEOUT_MS`` for a
partition leader or queue room. After ``DELIVERY_TIMEOUT_S`` without a single acknowledgement
it gives up: what is unacknowledged then (it may or may not have been written) and what was not
sent yet is reported as not delivered.

A message that fails with an error a new producer may overcome (a timeout, a lost leader,
``OutOfOrderSequenceNumber``: once a batch of a partition fails, the broker refuses that
producer's later batches there) is sent again, ``ATTEMPTS`` times in all at most, by a new
producer that first resends the failed messages in input order; so each key's events are written
in input order. A message whose failure was ambiguous (written, but its answer lost) is written
twice when resent, its second copy after later events of its key: the worker drops an event_id
it has seen among the campaign's last 128 events. What is not acknowledged in the end is
reported by input line number (or event index), and the command exits non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    UnknownProducerId,
)

from agents.kafka import new_producer
from streams.config import Settings

MAX_BUFFERED_EVENTS = 20_000  # every key's partial batch goes out after this many events
IN_FLIGHT_MESSAGES = 2_000  # unacknowledged messages (and events, below) before waiting
IN_FLIGHT_EVENTS = 40_000
REQUEST_TIMEOUT_MS = 90_000  # aiokafka: queue room, leader lookup and batch expiry wait this long
RETRY_BACKOFF_MS = 250
DELIVERY_TIMEOUT_S = 120.0  # no acknowledgement at all for this long: give up
ATTEMPTS = 3  # sends of one message, resends included
MAX_ROUNDS = 20  # producers started by one run

Item = tuple[int, bytes | None, bytes]  # (line number or event index, key, line)


@dataclass
class ProduceReport:
    unit: str = "events"  # what the numbers count: "lines" of a file or "events" of a sequence
    events: int = 0  # events read to be sent
    confirmed: int = 0  # events in messages the broker acknowledged
    messages: int = 0  # acknowledged messages
    resent: int = 0  # events sent again after a failed attempt
    skipped: list[int] = field(default_factory=list)  # line numbers that are not JSON
    failed: dict[str, list[int]] = field(default_factory=dict)  # error -> numbers not delivered

    @property
    def ok(self) -> bool:
        return not self.failed and self.confirmed == self.events

    def summary(self) -> str:
        if self.failed:
            text = (f"confirmed {self.confirmed} of {self.events} events; not delivered: "
                    + "; ".join(f"{numbered(self.unit, refs)} ({error})"
                                for error, refs in self.failed.items()))
        else:
            text = (f"sent {self.confirmed} events in {self.messages} messages, all acknowledged "
                    "by Kafka")
        if self.resent:
            text += (f"; {self.resent} events were sent again after a failed attempt (a repeat is "
                     "possible; the worker drops repeated event_ids)")
        if self.skipped:
            text += f"; skipped {len(self.skipped)} lines that are not JSON"
        return text


def ranges(numbers: Iterable[int]) -> str:
    """``1-3, 7, 9-10`` for 1 2 3 7 9 10 (sorted, repeats dropped)."""
    spans: list[list[int]] = []
    for n in sorted(set(numbers)):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def numbered(unit: str, refs: list[int]) -> str:
    """``lines 12041-44570``, ``event 7``."""
    return f"{unit if len(set(refs)) > 1 else unit.rstrip('s')} {ranges(refs)}"


def describe(exc: BaseException) -> str:
    """``KafkaTimeoutError: why`` on one line (aiokafka's errors name their type themselves,
    after an ``[Error N]`` for the broker's)."""
    name, text = type(exc).__name__, (str(exc).splitlines() or [""])[0]
    if isinstance(exc, OutOfOrderSequenceNumber):
        return f"{name}: refused after an earlier message to its partition failed"
    text = text.split("] ", 1)[1] if text.startswith("[Error ") and "] " in text else text
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def resendable(exc: BaseException) -> bool:
    """Whether a new producer may deliver what failed with ``exc``."""
    return isinstance(exc, KafkaTimeoutError | OutOfOrderSequenceNumber | UnknownProducerId) or (
        isinstance(exc, KafkaError) and bool(exc.retriable))


@dataclass(slots=True)
class Message:
    seq: int  # creation order
    key: bytes | None
    refs: list[int]
    lines: list[bytes]
    attempts: int = 0


class Batcher:
    """Messages of up to ``batch_size`` lines that share a key, in input order per key; every
    key's partial message goes out after each ``flush_every`` lines and at the end."""

    def __init__(self, items: Iterable[Item], batch_size: int, flush_every: int) -> None:
        self.items, self.batch_size, self.flush_every = items, max(1, batch_size), flush_every
        self.read = 0  # items taken so far

    def __iter__(self) -> Iterator[Message]:
        pending: dict[bytes | None, Message] = {}
        size, every, made = self.batch_size, max(1, self.flush_every), 0
        for n, (ref, key, line) in enumerate(self.items, start=1):
            self.read = n
            message = pending.get(key) if size > 1 else None
            if message is None:
                message = pending[key] = Message(made, key, [ref], [line])
                made += 1
            else:
                message.refs.append(ref)
                message.lines.append(line)
            if len(message.lines) >= size:
                del pending[key]
                yield message
            if n % every == 0 and pending:
                yield from self._flush(pending)
        yield from self._flush(pending)

    @staticmethod
    def _flush(pending: dict[bytes | None, Message]) -> list[Message]:
        out = sorted(pending.values(), key=lambda m: m.seq)
        pending.clear()
        return out


class Delivery:
    """Sends messages through a window of unacknowledged ones; resends what may succeed."""

    def __init__(self, settings: Settings, topic: str, report: ProduceReport,
                 progress: bool = True) -> None:
        self.settings, self.topic, self.report, self.progress = settings, topic, report, progress
        self.producer: AIOKafkaProducer | None = None
        self.in_flight: dict[asyncio.Future[Any], Message] = {}  # unacknowledged, oldest first
        self.in_flight_events = 0
        self.retry: list[Message] = []
        self.rounds = 0
        self.gave_up: str | None = None  # why nothing more is sent
        self.settled = asyncio.Event()  # set when the window has shrunk to ``self.target``
        self.target = (0, 0)
        self.last_answer = time.monotonic()

    async def start(self) -> None:
        """The first producer; an unreachable broker is an error here (nothing was sent)."""
        producer = self._new_producer()
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(KafkaError):
                await producer.stop()
            raise
        self.producer, self.rounds = producer, 1

    def _new_producer(self) -> AIOKafkaProducer:
        return new_producer(self.settings, linger_ms=5, max_batch_size=256 * 1024,
                            request_timeout_ms=REQUEST_TIMEOUT_MS,
                            retry_backoff_ms=RETRY_BACKOFF_MS)

    async def send(self, message: Message) -> None:
        if self.retry:
            await self._recover()
        await self._send(message)

    async def finish(self) -> None:
        """Wait for every acknowledgement (and resend) and stop the producer."""
        await self._settle(0, 0)
        while self.retry:
            await self._recover()
            await self._settle(0, 0)
        if self.producer is not None:
            with contextlib.suppress(KafkaError):
                await self.producer.stop()

    def fail(self, refs: list[int], error: str) -> None:
        self.report.failed.setdefault(error, []).extend(refs)

    async def _send(self, message: Message) -> None:
        if self.gave_up or self.producer is None:
            self.fail(message.refs, self.gave_up or "not sent")
            return
        message.attempts += 1
        try:
            lines = message.lines
            future = await self.producer.send(
                self.topic, lines[0] if len(lines) == 1 else b"\n".join(lines), key=message.key)
        except KafkaError as exc:  # not queued: nothing of it reached the producer
            self._failed(message, exc)
            return
        self.in_flight[future] = message
        self.in_flight_events += len(message.refs)
        future.add_done_callback(self._answered)
        if len(self.in_flight) > IN_FLIGHT_MESSAGES or self.in_flight_events > IN_FLIGHT_EVENTS:
            await self._settle(IN_FLIGHT_MESSAGES // 2, IN_FLIGHT_EVENTS // 2)

    def _answered(self, future: asyncio.Future[Any]) -> None:
        """Count an acknowledged message, or note its failure (which also retrieves the
        exception: no "Future exception was never retrieved")."""
        message = self.in_flight.pop(future, None)
        if message is None:  # already settled when giving up
            return
        self.last_answer = time.monotonic()
        self.in_flight_events -= len(message.refs)
        error = future.exception() if not future.cancelled() else KafkaError("cancelled")
        if error is None:
            self.report.confirmed += len(message.refs)
            self.report.messages += 1
        else:
            self._failed(message, error)
        if len(self.in_flight) <= self.target[0] and self.in_flight_events <= self.target[1]:
            self.settled.set()

    def _failed(self, message: Message, exc: BaseException) -> None:
        if (resendable(exc) and message.attempts < ATTEMPTS and not self.gave_up
                and self.rounds < MAX_ROUNDS):
            self.retry.append(message)
        else:
            self.fail(message.refs, describe(exc))

    async def _settle(self, messages: int, events: int) -> None:
        """Wait until at most ``messages`` messages and ``events`` events are unacknowledged;
        give up after ``DELIVERY_TIMEOUT_S`` without any answer from Kafka."""
        self.target, self.last_answer = (messages, events), time.monotonic()
        while len(self.in_flight) > messages or self.in_flight_events > events:
            self.settled.clear()
            silent = time.monotonic() - self.last_answer
            if silent >= DELIVERY_TIMEOUT_S:
                await self._abort(KafkaTimeoutError(
                    f"no acknowledgement from Kafka for {DELIVERY_TIMEOUT_S:.0f} s"))
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.settled.wait(), min(10.0, DELIVERY_TIMEOUT_S - silent))
            if self.progress and time.monotonic() - self.last_answer >= 10.0:
                print(f"  waiting for Kafka to acknowledge {len(self.in_flight)} messages "
                      f"(no answer for {time.monotonic() - self.last_answer:.0f} s; gives up "
                      f"after {DELIVERY_TIMEOUT_S:.0f} s)", file=sys.stderr, flush=True)

    async def _recover(self) -> None:
        """Settle everything, then resend the failed messages in input order with a new
        producer: the old one's sequence numbers for their partitions are spent."""
        while self.retry:
            await self._settle(0, 0)
            batch, self.retry = sorted(self.retry, key=lambda m: m.seq), []
            if not self.gave_up:
                await self._restart()
            if self.gave_up:
                for message in batch:
                    self.fail(message.refs, self.gave_up)
                return
            self.report.resent += sum(len(m.refs) for m in batch)
            for message in batch:
                await self._send(message)

    async def _restart(self) -> None:
        if self.producer is not None:
            with contextlib.suppress(KafkaError):
                await self.producer.stop()
            self.producer = None
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        while self.producer is None:
            producer = self._new_producer()
            try:
                await producer.start()
                self.producer, self.rounds = producer, self.rounds + 1
            except KafkaError as exc:
                with contextlib.suppress(KafkaError):
                    await producer.stop()
                if time.monotonic() > deadline:
                    self.gave_up = describe(exc)
                    return
                await asyncio.sleep(1.0)

    async def _abort(self, reason: KafkaError) -> None:
        """Give up: count every unacknowledged message as not delivered and drop the producer.

        aiokafka 0.14 has no public way to drop undelivered batches: ``stop`` waits for them
        while the idempotent producer resends them forever. So its sender task is stopped first
        (that ends the resending); ``stop`` then only closes the connections. The dropped
        batches' futures stay pending: no exception is left unretrieved."""
        self.gave_up = describe(reason)
        producer, self.producer = self.producer, None
        if producer is not None:
            await producer._sender.close()
            with contextlib.suppress(KafkaError):
                await producer.stop()
        for future, message in list(self.in_flight.items()):
            del self.in_flight[future]
            self.in_flight_events -= len(message.refs)
            self.fail(message.refs, self.gave_up)
