"""The consumer's sequence check: a message past a gap is not handled, and the partition is read
again from the gap (Faust can drop prefetched messages around a rebalance)."""

from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import AsyncMock

from agents.app import PinnedReadOffsets, SnapshottingConsumer
from streams import metrics


def consumer(expected: dict[str, int]) -> SimpleNamespace:
    return SimpleNamespace(_expected=dict(expected), seek=AsyncMock(), _pins=PinnedReadOffsets())


async def check(fake: SimpleNamespace, offset: int) -> bool:
    return await SnapshottingConsumer.in_sequence(fake, "tp", offset)  # type: ignore[arg-type]


async def test_messages_in_order_are_handled_and_advance_the_expected_offset() -> None:
    fake = consumer({"tp": 5})
    assert [await check(fake, o) for o in (5, 6, 7)] == [True, True, True]
    assert fake._expected["tp"] == 8
    fake.seek.assert_not_awaited()


async def test_a_gap_is_read_again_from_its_start_and_never_skipped() -> None:
    fake = consumer({"tp": 48})
    before = metrics.REREADS._value.get()
    assert await check(fake, 57) is False  # 48..56 were dropped: not handled, sought back
    fake._pins["tp"] = 48  # what Faust's seek sets
    assert await check(fake, 58) is False  # prefetched past the gap: skipped, no second seek
    fake._pins["tp"] = 58  # Faust's fetch loop after handing 58 over: the pin holds
    assert fake._pins["tp"] == 48
    fake.seek.assert_awaited_once_with("tp", 48)
    assert metrics.REREADS._value.get() == before + 1
    assert await check(fake, 48) is True  # the re-read arrives: unpinned
    fake._pins["tp"] = 49  # and Faust's read position moves on again
    assert fake._pins["tp"] == 49 and not fake._pins.pinned
    assert fake._expected["tp"] == 49


async def test_a_message_already_handled_is_skipped_without_seeking() -> None:
    fake = consumer({"tp": 10})
    assert await check(fake, 9) is False
    fake.seek.assert_not_awaited()


async def test_an_unknown_partition_starts_at_the_first_message() -> None:
    fake = consumer({})
    assert await check(fake, 3) is True
    assert fake._expected["tp"] == 4
