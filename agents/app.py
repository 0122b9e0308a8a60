"""The Faust app, built from one Settings object.  Every override of a Faust internal lives here.

Changes to Faust's Kafka transport, all for delivery guarantees (DESIGN.md section 6):
- Faust turns producer idempotence on only inside transactions; socialstream wants it on every
  output, so the producer always asks for it.
- Faust reads ``read_committed`` only when the app itself is transactional; socialstream always
  does, so events of aborted transactions of any producer are never applied.  And a fetch waits
  at most 20 ms at the broker, not Faust's 1.5 s (``FETCH_MAX_WAIT_MS``), for 256 KB, not the
  first byte (``FETCH_MIN_BYTES``).
- A unit is handed to its agent without mode's four-task race when the agent's buffer has room
  (``SnapshottingConsumer.wait_first``).
- The consumer runs on the app's event loop, not in a thread of its own (``LoopConsumer``): no
  cross-thread hand-over per fetch, and a seek can no longer race the hand-over of fetched
  records (Faust seeks from the event loop).
- Offsets are not contiguous (transaction markers, compaction, a log start that moved): a gap in
  the offsets the agents are handed is checked against the log itself (agents/logprobe.py) before
  it is taken for messages that Faust dropped.
- An agent of a sequenced topic gets what one fetch returned for a partition as one message
  (``FetchedRecords``), not one Faust message per record: Faust's per-message path (conductor,
  stream queue, acks, sensors) cost about ten times the work of an impression event.  Such a
  partition is committable up to the last unit its agent handled (``handled``), not through
  Faust's per-offset ack bookkeeping, and Faust's fetch loop looks at which partitions it may
  fetch every ``POLL_SECONDS``, not every second.
- State snapshots must be durable before their source offsets are committed.  Every commit
  (periodic, on rebalance, at shutdown) picks the offsets it will commit, runs the app's
  ``before_commit`` hooks in the same step (so every event up to those offsets is in the
  snapshots they take), waits until the broker has acknowledged what the hooks wrote, and only
  then commits.  Faust's own ``send_soon`` buffer is not enough for this: its flush gives up after
  0.1 s per message, so a commit could overtake snapshots still queued (found by kill -9 tests).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Sequence,
)
from typing import Any, Final, NoReturn, Protocol, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from faust.types.tuples import ConsumerMessage
from mode.services import WaitResults
from mode.utils.futures import maybe_async

from agents.kafka import MAX_MODEL_BYTES, ssl_context
from agents.logprobe import LogProbe
from streams import metrics
from streams.config import Settings

log = logging.getLogger(__name__)


MAX_UNIT_RECORDS: Final = 1000  # records per FetchedRecords: bounds the time a unit holds the loop


class Record(Protocol):
    """What agents read of a record in a ``FetchedRecords`` (aiokafka's ConsumerRecord)."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None  # epoch milliseconds
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class FetchedRecords(ConsumerMessage):
    """Consecutive records of one partition from one fetch, in offset order, handed to the
    partition's agent as one Faust message.  Its offset is the last record's: Faust acks, reads
    and drops it as that one, and once its agent is done with it ``SnapshottingConsumer.handled``
    makes the partition committable past it (a fetch skips only what is not readable:
    transaction markers, aborted or compacted records)."""

    __slots__ = ("records",)

    def __init__(self, tp: TP, records: Sequence[Record],
                 generation_id: int | None = None) -> None:
        last = records[-1]
        super().__init__(tp.topic, tp.partition, last.offset,
                         last.timestamp / 1000.0 if last.timestamp is not None else 0.0,
                         last.timestamp_type, None, last.key, b"", None, 0, 0, tp,
                         generation_id=generation_id)
        self.records = records


class Resumed:
    """A coroutine that was run by hand up to its first wait, on ``waiting`` (what it yielded):
    awaited, it goes on from there exactly as if the awaiting task had started it (the same
    delegation as ``yield from``, cancellation included)."""

    __slots__ = ("coro", "waiting")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self.coro, self.waiting = coro, waiting

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, waiting = self.coro, self.waiting
        while True:
            try:
                try:
                    sent = yield waiting
                except BaseException as exc:  # thrown in by the task: cancellation
                    waiting = coro.throw(exc)
                else:
                    waiting = coro.send(sent)
            except StopIteration as finished:
                return finished.value


class IdempotentProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer with ``acks=all`` and ``enable_idempotence=True`` always."""

    def _settings_extra(self) -> dict[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


# aiokafka keeps one fetch in flight per broker, and a fetch for partitions with nothing new
# waits this long at the broker: with Faust's 1,500 ms, a fetch for idle partitions (training,
# changelog, a quiet input partition) held back the next fetch of busy ones, and a worker on
# single-event input sat idle half the time (bench.peer: 24,800 -> 36,500 events/s).
FETCH_MAX_WAIT_MS: Final = 20

# ... unless it has this many bytes first.  Each fetch answered costs Python time (then in
# Faust's consumer thread, with a hand-over of the GIL to it): answered at the first byte, a
# worker fed 60,000 single-event messages/s fetched a few records at a time and used 97% of its
# core, against 75% with this (bench.peer --latency, before LoopConsumer).  Below about
# 13 MB/s a fetch waits out the 20 ms instead, which is the most this adds to any event's
# latency.
FETCH_MIN_BYTES: Final = 256 * 1024


# How long Faust's fetch loop waits for records before it looks again at which partitions it may
# fetch.  Faust waits up to a second, and a whole second when it may fetch none: a partition
# whose agent's buffer filled is left out until the buffer drains to 40%, and a worker working
# off a backlog then sat idle a third of the time, its buffers empty, while the fetch loop waited
# on the partitions left (the training one) or slept.
POLL_SECONDS: Final = 0.02


class LoopConsumer(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer "thread", run as a task on the app's event loop instead of a thread and
    loop of its own; its aiokafka consumer reads committed records only and waits at the broker
    for FETCH_MIN_BYTES, at most FETCH_MAX_WAIT_MS.

    In its own thread, every fetch the agents took cost two cross-thread wake-ups (the request
    queued to the thread, the result back), and the two threads took turns at the GIL on the one
    core a worker gets: a worker fed 60,000 single-event messages a second used 87% of its core
    that way and 82% this way (bench.pair at 20,000 events/s each: B/A 0.96).  The agents' units
    are bounded (``MAX_UNIT_RECORDS``) and so is a commit's hold of the loop, so heartbeats and
    fetches, now on the same loop, wait at most one unit; the session timeout is 10 s."""

    def __init__(self, consumer: Any, *, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(consumer, loop=loop, thread_loop=loop, **kwargs)
        self._serving: asyncio.Future[None] | None = None  # held: the loop keeps tasks weakly

    async def start(self) -> None:
        """mode's ``ServiceThread.start``, with the service's ``_serve`` as a task here instead
        of a thread's loop: start-up, stop and crash handling stay mode's."""
        assert not self._thread_started.is_set()
        self._thread_started.set()
        self._thread_running = asyncio.Future(loop=self.parent_loop)
        self.add_future(self._keepalive2())
        try:
            self._serving = asyncio.ensure_future(self._serve())
            if not self.should_stop:
                await self._thread_running
        finally:
            self._thread_running = None

    async def _gather_remaining_tasks(self) -> None:
        """mode cancels every task left on the thread's loop when it stops: this loop is the
        app's, and its tasks are not this service's to cancel."""

    async def call_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A call "in the consumer thread" is a call on this loop: no queue, no wake-up."""
        return await maybe_async(fun(*args, **kwargs))

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        for name in ("_isolation_level", "_fetch_max_wait_ms", "_fetch_min_bytes"):
            if getattr(consumer, name, None) is None:  # aiokafka changed: fail loudly
                raise RuntimeError(f"aiokafka consumer has no {name} to set")
        consumer._isolation_level = "read_committed"
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        return consumer


class PinnedReadOffsets(defaultdict[Any, int | None]):
    """Faust's per-partition read position, which its fetch loop moves past every message it
    hands over and which drops anything below it.  A partition sought back to a gap is pinned
    there until the re-read reaches the gap, or messages prefetched past the gap, handed over
    after the seek, would move it forward again and the re-read would be dropped."""

    def __init__(self) -> None:
        super().__init__(lambda: None)
        self.pinned: dict[Any, tuple[int, float]] = {}  # partition -> (gap offset, sought at)

    def __setitem__(self, tp: Any, offset: int | None) -> None:
        pin = self.pinned.get(tp)
        if pin is not None and offset is not None and offset > pin[0]:
            return
        super().__setitem__(tp, offset)


class SnapshottingConsumer(faust_aiokafka.Consumer):
    """Faust's consumer, writing the app's ``before_commit`` snapshots before every commit, and
    never committing past a message that the agents did not get.

    Around a rebalance Faust can drop messages it prefetched for the old generation without
    handing them to the agent, then commit the later ones it did hand over (its gap check is
    off by one and off entirely before the first commit): a silent loss, found by kill -9 tests.
    Agents therefore ask ``in_sequence`` for every message: the next expected offset of each
    partition is tracked from the committed position; a message past a gap is handled when the
    log holds nothing readable in the gap (``LogProbe``), and otherwise triggers a seek back to
    the gap; commits are capped at the next expected offset."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._expected: dict[Any, int] = {}  # partition -> next offset the agents must get
        # partition -> the offset before which everything is handled: committable
        self._done: dict[Any, int] = {}
        self._pins = PinnedReadOffsets()
        self._read_offset = self._pins
        self.probe = LogProbe(self.app.settings)  # type: ignore[attr-defined]

    def _new_consumer_thread(self) -> LoopConsumer:
        return LoopConsumer(self, loop=self.loop, beacon=self.beacon)

    async def on_stop(self) -> None:
        await super().on_stop()
        await self.probe.stop()

    async def perform_seek(self) -> None:
        """After an assignment: expect each agent partition's committed offset next.  One never
        committed, or committed below the log start (retention, DeleteRecords), is read from
        the log start: aiokafka leaves the first wherever it was, and resets the second only
        after a failed fetch, racing Faust's own seeks."""
        await super().perform_seek()
        self._expected.clear()
        self._done.clear()
        sequenced: set[str] = getattr(self.app, "sequenced_topics", set())
        mine = [tp for tp in self.assignment() if tp.topic in sequenced]
        earliest = await self.earliest_offsets(*mine) if mine else {}
        for tp in mine:
            committed = self._committed_offset[tp]
            start = earliest.get(tp, 0)
            if committed is None:
                await self.seek(tp, start)
            # Committed below the log start (retention, DeleteRecords): aiokafka's reset
            # (auto_offset_reset=earliest) reads from the log start already, and the offsets in
            # between are gone, so they count as done.
            self._expected[tp] = self._done[tp] = \
                start if committed is None or committed < start else committed

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's ``Consumer.getmany`` (same flow, generation and partition checks), yielding
        the records of a sequenced topic's partition as ``FetchedRecords`` units."""
        timeout = min(timeout, POLL_SECONDS)
        if self.flow_active and not self.app.client_only and not self._get_active_partitions():
            await asyncio.sleep(POLL_SECONDS)  # every partition's buffer is full (see above)
            return
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:  # as Faust does: back to the committed offsets
            try:
                await self.perform_seek()
            except Exception as exc:
                log.warning("exception performing seek when flow not active %r", exc)
            return
        sequenced: set[str] = getattr(self.app, "sequenced_topics", set())
        units: dict[TP, list[Any]] = {
            tp: [rs[i:i + MAX_UNIT_RECORDS] for i in range(0, len(rs), MAX_UNIT_RECORDS)]
            if tp.topic in sequenced else rs
            for tp, rs in records.items() if rs}
        for tp, item in self.scheduler.iterate(units):
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break
            if active_partitions is None or tp in active_partitions \
                    or tp in self._buffered_partitions:
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                yield tp, (FetchedRecords(tp, item, generation_id) if type(item) is list
                           else self._to_message(tp, item))

    def handled(self, unit: FetchedRecords) -> None:
        """The agent is done with ``unit`` (records ``admit`` handed over): its partition is
        committable up to the unit's last record.

        Faust keeps every acked offset (its stream iterator appends them itself, past any
        override of ``ack``) and fills in its gap records offset by offset at each commit, then
        sorts them all: with units of up to a thousand records that took 50-80 ms of each commit
        at 40,000 events/s, with the event loop held.  A sequenced partition needs none of it:
        its agent handles units in offset order and ``admit`` vouched for everything before each,
        so the end of the last unit handled is the committable offset."""
        tp = unit.tp
        if tp in self._done:
            self._done[tp] = max(self._done[tp], unit.offset + 1)

    async def admit(self, unit: FetchedRecords) -> Sequence[Record]:
        """The records of ``unit`` its agent should handle now: none when the unit lies past
        records that were dropped (``in_sequence``), only the ones not yet handed over when it
        overlaps what was."""
        tp, records = unit.tp, unit.records
        expected = self._expected.get(tp)
        if expected is not None and records[0].offset < expected:
            records = [r for r in records if r.offset >= expected]
            if not records:
                return records
        if not await self.in_sequence(tp, records[0].offset):
            return ()
        self._accept(tp, records[-1].offset)
        return records

    def next_offset(self, tp: Any) -> int | None:
        """The next offset of ``tp`` the agents will handle (None before the first)."""
        return self._expected.get(tp)

    async def in_sequence(self, tp: Any, offset: int) -> bool:
        """Whether the agent should handle this message now (False: seen, or past messages that
        were dropped)."""
        expected = self._expected.get(tp)
        if expected is None or offset == expected:
            self._accept(tp, offset)
            return True
        if offset < expected:
            return False
        pinned = self._pins.pinned.get(tp)
        if pinned is not None and time.monotonic() - pinned[1] <= 5.0:
            return False  # prefetched before the seek back: the re-read is on its way
        first = await self.probe.first_readable(tp.topic, tp.partition, expected, offset)
        if self._expected.get(tp) != expected:  # moved on while the probe looked
            return await self.in_sequence(tp, offset)
        if first is None:  # nothing readable in between: markers, compaction, a moved start
            metrics.OFFSET_GAPS.inc()
            self._accept(tp, offset)
            return True
        # Records from `first` on were dropped; the stretch before it holds nothing readable
        # (below a moved log start, say), so the re-read starts there and is expected there.
        log.warning("%s: got offset %s, expected %s, and the log holds records from %s "
                    "(dropped around a rebalance): reading again from %s",
                    tp, offset, expected, first, first)
        metrics.REREADS.inc()
        self._expected[tp] = first
        self._pins.pinned[tp] = (first, time.monotonic())
        await self.seek(tp, first)
        return False

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        """Faust's fetch loop hands each message over with ``wait_first(callback(message),
        suspend_flow.wait())``: mode runs both as tasks, with two more for the consumer's stopped
        and crashed events, waits for the first, and cancels the rest: 32 µs of CPU per hand-over
        on its own (1.9 µs this way), more in a busy worker, where every task and cancellation is
        another turn of the loop, and live fetches hand over a few hundred small units a second.
        The hand-over usually finishes without waiting (the agent's buffer has room), and then it
        needs no task: the callback is run up to its first wait here, and only one that waits is
        raced as Faust does (a suspended flow still cancels it)."""
        first = coros[0]
        if len(coros) != 2 or timeout is not None or not asyncio.iscoroutine(first) \
                or self.suspend_flow.is_set() or self._stopped.is_set() \
                or self._crashed.is_set():
            return await super().wait_first(*coros, timeout=timeout)
        try:
            waiting = first.send(None)
        except StopIteration as finished:  # delivered without waiting
            coros[1].close()
            return WaitResults([first], [finished.value], False)
        except BaseException:
            coros[1].close()
            raise
        return await super().wait_first(Resumed(first, waiting), coros[1])

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        """Faust's record of offsets that hold no message, which its commit fills in offset by
        offset; a sequenced partition's commits do not need it (see handled), and Faust's fetch
        loop would add one for every unit (the offsets before its last)."""
        if tp not in self._done:
            await super()._add_gap(tp, offset_from, offset_to)

    def _accept(self, tp: Any, offset: int) -> None:
        self._expected[tp] = offset + 1
        self._pins.pinned.pop(tp, None)

    def _new_offset(self, tp: Any) -> int | None:
        done = self._done.get(tp)
        if done is not None:  # a sequenced partition (see handled)
            acked = self._acked[tp]  # one offset per unit: only the ones not yet covered stay
            if acked:
                acked[:] = [offset for offset in acked if offset >= done]
                self._acked_index[tp].intersection_update(acked)
            committed = self._committed_offset[tp]
            return done if committed is None or done > committed else None
        offset: int | None = super()._new_offset(tp)
        expected = self._expected.get(tp)
        if offset is None or expected is None:
            return offset
        return min(offset, expected)

    async def _commit_tps(self, tps: Iterable[Any], start_new_transaction: bool) -> bool:
        # No message is half-handled while the offsets are chosen and the snapshots taken: the
        # snapshots cover every event the offsets cover (and maybe more, which is harmless), and
        # every output of those events is among the ones awaited below.
        app = cast(App, self.app)
        async with app.processing:
            offsets = self._filter_committable_offsets(tps)
            if not offsets:
                return False
            outputs, app.pending_outputs = app.pending_outputs, []
            writes = [hook() for hook in app.before_commit]  # taken now, written below
        try:
            # Outputs before state: a snapshot that marks an event applied is written only once
            # the broker holds everything that event produced (acks=all).
            await asyncio.gather(*outputs)
            await asyncio.gather(*writes)
            await self._handle_attached(offsets)
        except Exception as exc:  # not durable: never commit past it; a restart re-reads
            metrics.OUTPUT_FAILURES.inc()
            stop_undelivered(exc)
        return bool(await self._commit_offsets(offsets,
                                               start_new_transaction=start_new_transaction))


def stop_undelivered(exc: BaseException) -> NoReturn:
    """An output the broker did not take after the producer's retries: exit at once, before any
    offset past it can be committed, so that a restart processes its source again."""
    log.critical("could not deliver an output message (%r): stopping the worker before its "
                 "source offset is committed; a restart reprocesses it", exc, exc_info=exc)
    os._exit(70)


class Transport(faust_aiokafka.Transport):
    Producer = IdempotentProducer
    Consumer = SnapshottingConsumer


class App(faust.App):
    # Each hook takes its snapshot when called and returns the awaitable that writes it.
    before_commit: list[Callable[[], Awaitable[object]]]
    # Topics whose agents check offsets with SnapshottingConsumer.in_sequence.
    sequenced_topics: set[str]
    # Held while a message is handled; a commit takes it to choose offsets and take snapshots.
    processing: asyncio.Lock
    # Delivery futures of outputs (recommendations, dead letters, forwards) since the last commit.
    pending_outputs: list[Awaitable[object]]

    def __init__(self, *args: Any, settings: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings
        self.before_commit = []
        self.sequenced_topics = set()
        self.processing = asyncio.Lock()
        self.pending_outputs = []

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> Transport:
        return Transport(self.conf.broker_producer, self)


def credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """Faust's form of the TLS / SASL settings (the same ones aiokafka clients get)."""
    context = ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=settings.sasl_username,
                                     password=settings.sasl_password,
                                     ssl_context=context, mechanism=settings.sasl_mechanism)
    return faust.SSLCredentials(context) if context is not None else None


def create_app(settings: Settings) -> App:
    """A Faust app with socialstream's reliability defaults; agents are attached by the caller."""
    return App(
        settings.app_id,
        settings=settings,
        broker=[f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=credentials(settings),
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # A new consumer group starts at the beginning: events produced before the first worker
        # came up are processed, not skipped.
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Agents of sequenced topics get units of up to MAX_UNIT_RECORDS records: a few are
        # plenty of read-ahead (Faust's default of 4,096 would be millions of events).
        stream_buffer_maxsize=32,
        # No lingering: every recommendation, and every commit's wait for its snapshots, was
        # 5 ms later with Faust's batching window. aiokafka keeps one produce request in flight
        # per broker, so what is sent while one is out (a storm of dead letters, a commit's
        # snapshots and examples) still goes out together in the next.
        producer_linger_ms=0,
        # A commit sends its examples (a few thousand at 60,000 events/s) to the one training
        # partition, and aiokafka has one batch in flight per partition: in Faust's 16 KB
        # batches they took 400-800 ms of every commit; in 1 MB ones, 30-60 ms.
        producer_max_batch_size=1024 * 1024,
        producer_max_request_size=MAX_MODEL_BYTES,
        # A killed worker's partitions move to the others after 10 s, not Faust's default 60 s.
        broker_session_timeout=10.0,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        # Faust's /table (table contents) and /router (cluster layout) endpoints: unused here, and
        # table_route forwarding of /campaigns/{id} does not need them.
        web_tables_enabled=False,
        web_router_enabled=False,
        autodiscover=False,
    )
