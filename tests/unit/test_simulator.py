"""The simulator: deterministic for a seed, valid events only, and a simulated day of 8
campaigns exercises every action of the policy."""

from __future__ import annotations

import itertools

import orjson
import pytest

from streams.events import SocialEvent, decode
from streams.policy import ACTIONS
from streams.replay import replay
from streams.simulator import HOUR_MS, MINUTE_MS, aggregate, parse_duration, simulate


def lines(seed: int, duration_ms: int = 3 * HOUR_MS) -> list[bytes]:
    events, _ = simulate(campaigns=3, creatives=3, duration_ms=duration_ms, seed=seed)
    return [orjson.dumps(e) for e in events]


def test_same_seed_same_traffic_and_every_event_is_valid() -> None:
    first = lines(4)
    assert first == lines(4) and first != lines(5)
    assert all(isinstance(decode(line), SocialEvent) for line in first)
    kinds = {orjson.loads(line)["type"] for line in first}
    assert kinds >= {"impression", "click", "conversion", "spend", "post", "comment", "reaction"}


def test_ground_truth_names_the_fatigued_creative_and_the_crises() -> None:
    _, truth = simulate(campaigns=8, creatives=4, duration_ms=24 * HOUR_MS, seed=1)
    assert len(truth.campaigns) == 8
    for c in truth.campaigns:
        assert c.fatigue["creative"] in c.ctr
        assert truth.start_ms <= c.fatigue["start_ms"] < truth.end_ms
    assert any(c.crisis for c in truth.campaigns)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_simulated_day_exercises_every_action(seed: int) -> None:
    events, _ = simulate(campaigns=8, creatives=4, duration_ms=24 * HOUR_MS, seed=seed)
    report = replay(orjson.dumps(e) for e in events).report()
    assert sorted(report["recommendations"]) == sorted(ACTIONS)
    assert report["events"]["rejected"] == 0


@pytest.mark.parametrize(("text", "ms"), [("90s", 90_000), ("30m", 1_800_000),
                                          ("24h", 86_400_000), ("2d", 172_800_000)])
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("bad", ["", "24", "h", "-1h", "0s", "3w"])
def test_bad_durations_are_refused_clearly(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_aggregated_delivery_is_the_same_traffic_as_counts() -> None:
    """Counts per creative per minute: the campaign state a replay builds holds the same
    impressions, clicks, conversions and revenue as from one event each, with far fewer events,
    and the budget and fatigue rules still run."""
    events = list(simulate(campaigns=3, duration_ms=6 * HOUR_MS, seed=4)[0])
    counted = aggregate(events, MINUTE_MS)
    assert len(counted) < 0.8 * len(events)
    assert all(e["ts"] <= f["ts"] for e, f in itertools.pairwise(counted))
    single = replay(orjson.dumps(e) for e in events)
    grouped = replay(orjson.dumps(e) for e in counted)
    assert grouped.rejected == single.rejected == {}
    for cid, state in single.pipeline.store.campaigns.items():
        other = grouped.pipeline.store.campaigns[cid]
        assert {c: (s.impressions, s.clicks, s.conversions) for c, s in other.creatives.items()} \
            == {c: (s.impressions, s.clicks, s.conversions) for c, s in state.creatives.items()}
        assert other.revenue == pytest.approx(state.revenue)
        assert other.counts["impression"] == state.counts["impression"]
    assert grouped.recommendations["shift_budget"] > 0
