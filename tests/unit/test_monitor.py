"""Readiness means progress: a partition is stalled when input waits and its position has not
moved for STALL_SECONDS; moving, or having nothing to read, is progress."""

from __future__ import annotations

from agents.monitor import STALL_SECONDS, Readiness


def test_a_position_that_does_not_move_while_input_waits_is_stalled() -> None:
    readiness = Readiness()
    assert not readiness.stalled(0, 100, lag=50, now=0.0)
    assert not readiness.stalled(0, 100, lag=50, now=STALL_SECONDS - 1)
    assert readiness.stalled(0, 100, lag=50, now=STALL_SECONDS + 1)


def test_moving_or_having_nothing_to_read_is_progress() -> None:
    readiness = Readiness()
    assert not readiness.stalled(0, 100, lag=50, now=0.0)
    assert not readiness.stalled(0, 101, lag=49, now=STALL_SECONDS + 1)  # moved: clock restarts
    assert not readiness.stalled(0, 101, lag=49, now=2 * STALL_SECONDS)
    assert not readiness.stalled(1, 7, lag=0, now=0.0)
    assert not readiness.stalled(1, 7, lag=0, now=10 * STALL_SECONDS)  # idle, not stuck
