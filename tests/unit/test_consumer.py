"""The consumer's sequence check: a message past a gap is handled when the log holds nothing
readable in the gap (transaction markers, compaction, a moved log start), and otherwise not
handled, and the partition is read again from the gap (Faust can drop prefetched messages around a
rebalance).  The log probe is replaced here; tests/chaos runs it against a real broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any, cast
from unittest.mock import ANY, AsyncMock

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from mode.services import WaitResults
from mode.utils.locks import Event

from agents.app import FetchedRecords, PinnedReadOffsets, SnapshottingConsumer
from streams import metrics

TP = TopicPartition("t", 0)


class Fake(SimpleNamespace):
    in_sequence = SnapshottingConsumer.in_sequence
    admit = SnapshottingConsumer.admit
    _accept = SnapshottingConsumer._accept
    handled = SnapshottingConsumer.handled
    _new_offset = SnapshottingConsumer._new_offset


def consumer(expected: dict[Any, int], first_readable: int | str | None = "low") -> Fake:
    """``first_readable``: what the log probe finds first in the gap: None for nothing (a real
    gap), "low" (default) for the expected offset itself (every message in it was dropped)."""
    async def first(topic: str, partition: int, low: int, high: int) -> int | None:
        return low if first_readable == "low" else cast(int | None, first_readable)

    return Fake(_expected=dict(expected), seek=AsyncMock(), _pins=PinnedReadOffsets(),
                _done=dict(expected), _acked=defaultdict(list), _acked_index=defaultdict(set),
                _committed_offset=defaultdict(lambda: None, expected),
                probe=SimpleNamespace(first_readable=AsyncMock(side_effect=first)))


async def check(fake: Fake, offset: int) -> bool:
    return await fake.in_sequence(TP, offset)  # type: ignore[misc]


async def test_messages_in_order_are_handled_and_advance_the_expected_offset() -> None:
    fake = consumer({TP: 5})
    assert [await check(fake, o) for o in (5, 6, 7)] == [True, True, True]
    assert fake._expected[TP] == 8
    fake.seek.assert_not_awaited()


async def test_a_gap_is_read_again_from_its_start_and_never_skipped() -> None:
    fake = consumer({TP: 48})
    before = metrics.REREADS._value.get()
    assert await check(fake, 57) is False  # 48..56 were dropped: not handled, sought back
    fake._pins[TP] = 48  # what Faust's seek sets
    assert await check(fake, 58) is False  # prefetched past the gap: skipped, no second seek
    fake._pins[TP] = 58  # Faust's fetch loop after handing 58 over: the pin holds
    assert fake._pins[TP] == 48
    fake.seek.assert_awaited_once_with(TP, 48)
    assert metrics.REREADS._value.get() == before + 1
    assert await check(fake, 48) is True  # the re-read arrives: unpinned
    fake._pins[TP] = 49  # and Faust's read position moves on again
    assert fake._pins[TP] == 49 and not fake._pins.pinned
    assert fake._expected[TP] == 49


async def test_a_message_already_handled_is_skipped_without_seeking() -> None:
    fake = consumer({TP: 10})
    assert await check(fake, 9) is False
    fake.seek.assert_not_awaited()


async def test_an_unknown_partition_starts_at_the_first_message() -> None:
    fake = consumer({})
    assert await check(fake, 3) is True
    assert fake._expected[TP] == 4


async def test_a_gap_the_log_confirms_is_handled_without_reading_again() -> None:
    fake = consumer({TP: 12}, first_readable=None)  # offset 12 is a transaction's commit marker
    gaps, rereads = metrics.OFFSET_GAPS._value.get(), metrics.REREADS._value.get()
    assert await check(fake, 13) is True
    fake.probe.first_readable.assert_awaited_once_with("t", 0, 12, 13)
    fake.seek.assert_not_awaited()
    assert fake._expected[TP] == 14
    assert metrics.OFFSET_GAPS._value.get() == gaps + 1
    assert metrics.REREADS._value.get() == rereads


async def test_a_re_read_starts_at_the_first_readable_record_of_the_gap() -> None:
    """The log start moved past the expected offset (DeleteRecords) and messages after it were
    dropped: the partition is read again from the first record there is, which is then expected
    (seeking to the deleted offset would land on the log start and be taken for a new gap)."""
    fake = consumer({TP: 10}, first_readable=20)
    assert await check(fake, 25) is False
    fake.seek.assert_awaited_once_with(TP, 20)
    assert fake._expected[TP] == 20
    assert await check(fake, 20) is True and fake._expected[TP] == 21


def unit(*offsets: int) -> FetchedRecords:
    return FetchedRecords(TP, [ConsumerRecord("t", 0, o, 0, 0, None, b"{}", None, 0, 2, ())
                               for o in offsets])


async def admitted(fake: Fake, *offsets: int) -> list[int]:
    return [r.offset for r in await fake.admit(unit(*offsets))]  # type: ignore[misc]


async def test_a_unit_is_handled_whole_and_the_next_one_expected_after_its_last_record() -> None:
    """Offsets inside a unit may skip (a marker between two records of one fetch): the fetch
    itself skipped only what is not readable, so no probe."""
    fake = consumer({TP: 5})
    assert await admitted(fake, 5, 6, 8, 9) == [5, 6, 8, 9]
    assert fake._expected[TP] == 10
    fake.probe.first_readable.assert_not_awaited()


async def test_a_unit_overlapping_what_was_handed_over_keeps_only_the_rest() -> None:
    fake = consumer({TP: 7})
    assert await admitted(fake, 5, 6, 7, 8) == [7, 8]
    assert await admitted(fake, 6, 7, 8) == []
    assert fake._expected[TP] == 9


async def test_a_unit_past_dropped_records_is_not_handled_and_they_are_read_again() -> None:
    fake = consumer({TP: 3})
    assert await admitted(fake, 10, 11) == []
    fake.seek.assert_awaited_once_with(TP, 3)
    assert fake._expected[TP] == 3


def committable(fake: Fake) -> int | None:
    return fake._new_offset(TP)  # type: ignore[misc]


async def handled(fake: Fake, *offsets: int) -> list[int]:
    """A unit through ``admit``, handled if admitted (as the agents do), then acked."""
    fetched = unit(*offsets)
    records = await fake.admit(fetched)  # type: ignore[misc]
    if records:
        fake.handled(fetched)  # type: ignore[misc]
    fake._acked[TP].append(fetched.offset)  # what Faust's stream iterator does on its own
    return [r.offset for r in records]


async def test_the_committable_offset_follows_the_units_handled_in_order() -> None:
    fake = consumer({TP: 5})
    assert committable(fake) is None
    await handled(fake, 5, 6, 8)
    await handled(fake, 9, 10)
    assert committable(fake) == 11
    assert not fake._acked[TP]  # one offset per unit at most, dropped once covered


async def test_a_unit_handed_over_but_not_yet_handled_is_not_committable() -> None:
    fake = consumer({TP: 5})
    await handled(fake, 5, 6)
    assert await admitted(fake, 7, 8) == [7, 8]  # waiting for the processing lock, say
    assert committable(fake) == 7


async def test_nothing_past_dropped_records_is_committable_until_they_are_read_again() -> None:
    fake = consumer({TP: 3})
    assert await handled(fake, 10, 11) == []  # acked by Faust, never handled
    assert committable(fake) is None
    assert await handled(fake, 3, 4, 5) == [3, 4, 5]
    assert committable(fake) == 6


async def test_a_gap_the_log_confirms_is_committed_past() -> None:
    fake = consumer({TP: 12}, first_readable=None)  # offset 12 is a transaction's commit marker
    assert await handled(fake, 13, 14) == [13, 14]
    assert committable(fake) == 15


# --- the hand-over of a unit to its agent (SnapshottingConsumer.wait_first) -----------------

class Racing(SnapshottingConsumer):
    """Only what ``wait_first`` reads: the flow and the service's stopped and crashed events."""

    def __init__(self) -> None:  # not Faust's: no app, no transport
        self.suspend_flow = asyncio.Event()
        self._stopped, self._crashed = Event(), Event()
        self._loop = asyncio.get_running_loop()


async def test_a_delivery_that_does_not_wait_is_finished_without_any_task() -> None:
    racing, steps = Racing(), []

    async def deliver() -> str:
        steps.append("delivered")
        return "done"

    tasks = len(asyncio.all_tasks())
    result = await racing.wait_first(deliver(), racing.suspend_flow.wait())
    assert result == WaitResults([ANY], ["done"], False) and steps == ["delivered"]
    assert len(asyncio.all_tasks()) == tasks


async def test_a_delivery_that_waits_goes_on_where_it_stopped() -> None:
    racing, room = Racing(), asyncio.Event()

    async def deliver() -> int:
        await room.wait()  # the agent's buffer is full
        await asyncio.sleep(0)
        return 7

    waiting = asyncio.ensure_future(racing.wait_first(deliver(), racing.suspend_flow.wait()))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    room.set()
    assert (await waiting).results == [7]


async def test_a_delivery_that_waits_is_cancelled_when_the_flow_is_suspended() -> None:
    """As in Faust: a rebalance must not wait for an agent's buffer to drain."""
    racing, cancelled = Racing(), []

    async def deliver() -> None:
        try:
            await asyncio.Event().wait()  # never room
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    waiting = asyncio.ensure_future(racing.wait_first(deliver(), racing.suspend_flow.wait()))
    await asyncio.sleep(0.01)
    racing.suspend_flow.set()
    result = await asyncio.wait_for(waiting, 1.0)
    assert result.results == [True] and cancelled == [True]


async def test_a_delivery_that_fails_raises_at_once_or_after_waiting() -> None:
    racing = Racing()

    async def fail(wait: bool) -> None:
        if wait:
            await asyncio.sleep(0.001)
        raise ValueError("bad message")

    for wait in (False, True):
        with pytest.raises(ValueError, match="bad message"):
            await racing.wait_first(fail(wait), racing.suspend_flow.wait())


async def test_a_suspended_flow_takes_fausts_own_way() -> None:
    racing = Racing()
    racing.suspend_flow.set()

    async def deliver() -> int:
        return 1

    result = await racing.wait_first(deliver(), racing.suspend_flow.wait())
    assert result.results == [1, True]  # both ran as tasks and were done together
