"""How examples travel to the trainer and how fast it learns them: packed a few per message, and
learnt at an even pace over LEARN_SPREAD rather than in a burst after each commit."""

from __future__ import annotations

import pytest

from agents.training import LEARN_SPREAD, Pace
from streams.training import EXAMPLES_PER_MESSAGE, pack_examples, unpack_examples


def test_examples_are_packed_in_order_and_unpacked_the_same() -> None:
    examples = [f'{{"id":"e{i}"}}'.encode() for i in range(2 * EXAMPLES_PER_MESSAGE + 3)]
    messages = pack_examples(examples)
    assert [len(unpack_examples(m)) for m in messages] == [EXAMPLES_PER_MESSAGE,
                                                          EXAMPLES_PER_MESSAGE, 3]
    assert [e for m in messages for e in unpack_examples(m)] == examples
    assert pack_examples([]) == []


def test_a_message_of_one_example_as_earlier_versions_wrote_it_reads_the_same() -> None:
    assert unpack_examples(b'{"id":"e1","kind":"sentiment"}') == [
        b'{"id":"e1","kind":"sentiment"}']


def learn_all(pace: Pace, first: int, end: int, now: float) -> tuple[list[float], float]:
    """Learns messages first..end-1 one at a time, each taking no time; the pauses."""
    pauses = []
    for offset in range(first, end):
        pause = pace.pause(end, offset, now, now)
        pauses.append(pause)
        now += pause
    return pauses, now


def test_what_the_log_holds_is_learnt_evenly_by_the_deadline() -> None:
    pauses, done = learn_all(Pace(), 0, 100, now=10.0)
    assert pauses[-1] == 0.0  # nothing left to wait for
    assert pauses[:-1] == pytest.approx([LEARN_SPREAD / 100] * (len(pauses) - 1))
    assert done == pytest.approx(10.0 + LEARN_SPREAD, abs=LEARN_SPREAD / 50)


def test_a_new_end_sets_a_new_deadline_for_everything_unlearnt() -> None:
    pace = Pace()
    assert pace.pause(100, 49, began=0.0, now=0.0) > 0  # halfway through, at the start
    # 150 more arrive at 1.0 s: 200 left, spread over LEARN_SPREAD from now
    pause = pace.pause(300, 99, began=1.0, now=1.0)
    assert pause == pytest.approx(LEARN_SPREAD / 201)


def test_behind_the_deadline_it_learns_flat_out() -> None:
    pace = Pace()
    pace.pause(1000, 0, began=0.0, now=0.0)
    assert pace.pause(None, 10, began=LEARN_SPREAD + 0.1, now=LEARN_SPREAD + 0.1) == 0.0
    # a slice that took longer than its share is not followed by a pause
    assert pace.pause(None, 11, began=0.5, now=0.9) == 0.0
