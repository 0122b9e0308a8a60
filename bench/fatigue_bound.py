"""The best fatigue detection any detector can reach on bench.decisions' simulated days.

Issue 14 asks for >= 80% of fatigued creatives paused within the day and a median delay of
<= 120 event-minutes after a 40% click-through drop, with <= 0.05 healthy creatives paused per
campaign-day.  Whether that is possible depends on the evidence the traffic carries, so this
runs an oracle on the same days as ``bench.decisions --only detection``: a CUSUM per creative
that knows the creative's true click-through before the drop (p0) and after it (0.6 p0), fed the
creative's own impressions and clicks.  With p0 and p1 known, CUSUM is the optimal detector of
the change (Lorden's minimax delay); a real detector, which must estimate p0 from the same
traffic, can only do worse.  The alarm threshold is the smallest one whose false alarms (every
alarm on a healthy creative, or on the fatigued one before its drop; restarted after each
alarm, as repeated pauses would count) stay within the budget.

    .venv/bin/python -m bench.fatigue_bound [--seeds 8 --impressions-per-minute 12]
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

from streams.simulator import HOUR_MS, MINUTE_MS, simulate

DROP = 0.4  # as bench.decisions
TARGETS = (0.80, 120.0)  # share paused within the day, median delay in event-minutes


@dataclass(frozen=True, slots=True)
class Stream:
    """One creative's day: its impressions in time order, each with whether it was clicked."""

    p0: float
    start_ms: int | None  # the drop, for the fatigued creative
    impressions: list[tuple[int, bool]]


def streams(seeds: range, per_minute: float) -> list[Stream]:
    """Every creative of bench.decisions' detection days (crisis and crisis-free)."""
    out = []
    for seed in seeds:
        for crisis_share in (1.0, 0.0):
            events, truth = simulate(campaigns=8, creatives=4, duration_ms=24 * HOUR_MS,
                                     seed=seed, crisis_share=crisis_share, fatigue_drop=DROP,
                                     impressions_per_minute=per_minute)
            shown: defaultdict[str, list[int]] = defaultdict(list)
            clicked: Counter[tuple[str, int]] = Counter()
            for event in events:
                if event["type"] == "impression":
                    shown[event["creative_id"]].append(event["ts"])
                elif event["type"] == "click":  # the simulator clicks 500 ms after showing
                    clicked[event["creative_id"], event["ts"] - 500] += 1
            for campaign in truth.campaigns:
                for creative, p0 in campaign.ctr.items():
                    seq = []
                    for ts in sorted(shown[creative]):
                        hit = clicked[creative, ts] > 0
                        clicked[creative, ts] -= hit
                        seq.append((ts, hit))
                    fatigued = campaign.fatigue["creative"] == creative
                    out.append(Stream(p0, campaign.fatigue["start_ms"] if fatigued else None, seq))
            if sum(clicked.values()):
                raise RuntimeError("a click matched no impression: the simulator changed")
    return out


def alarms(stream: Stream, h: float) -> list[int]:
    """CUSUM of the log-likelihood ratio of p1 = 0.6 p0 against p0, restarted after each alarm."""
    p0 = stream.p0
    p1 = (1 - DROP) * p0
    click, none = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    s, found = 0.0, []
    for ts, hit in stream.impressions:
        s = max(0.0, s + (click if hit else none))
        if s >= h:
            found.append(ts)
            s = 0.0
    return found


def evaluate(data: list[Stream], h: float) -> tuple[int, list[float]]:
    """(false alarms, minutes from each fatigued creative's drop to its first alarm)."""
    false, delays = 0, []
    for stream in data:
        found = alarms(stream, h)
        start = stream.start_ms
        if start is None:
            false += len(found)
            continue
        false += sum(1 for ts in found if ts < start)
        after = [ts for ts in found if ts >= start]
        if after:
            delays.append((after[0] - start) / MINUTE_MS)
    return false, delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--impressions-per-minute", type=float, default=12.0)
    args = parser.parse_args()
    data = streams(range(args.first_seed, args.first_seed + args.seeds),
                   args.impressions_per_minute)
    fatigued = [s for s in data if s.start_ms is not None]
    campaign_days = len(fatigued)  # one fatigued creative per campaign-day
    after = [sum(1 for ts, _ in s.impressions if 0 <= ts - s.start_ms < 120 * MINUTE_MS)
             for s in fatigued if s.start_ms is not None]
    print(f"{len(fatigued)} fatigued creatives in {campaign_days} campaign-days at "
          f"{args.impressions_per_minute:g} impressions a minute per campaign at peak; median "
          f"p0 {statistics.median(s.p0 for s in fatigued):.4f}, median impressions in the 120 "
          f"minutes after the drop {statistics.median(after):.0f}")
    grid = [round(0.05 * i, 2) for i in range(1, 401)]
    results = {h: evaluate(data, h) for h in grid}
    for budget in (0.05, 0.5):
        # the smallest h from which every larger one stays within the budget
        h = grid[-1]
        for candidate in reversed(grid):
            if results[candidate][0] > budget * campaign_days:
                break
            h = candidate
        false, delays = results[h]
        share = len(delays) / len(fatigued)
        median = statistics.median(delays) if delays else math.inf
        print(f"oracle CUSUM, false pauses <= {budget} per campaign-day (h {h:.2f}, "
              f"{false / campaign_days:.3f}): paused within the day {share:.0%} (target >= "
              f"{TARGETS[0]:.0%}), median delay {median:.0f} event-minutes (target <= "
              f"{TARGETS[1]:.0f}); within 120 minutes "
              f"{sum(1 for d in delays if d <= 120) / len(fatigued):.0%}")
    for h in (2.0, 4.0, 6.0):
        false, delays = results[h]
        print(f"  h {h:g}: {false / campaign_days:.2f} false pauses per campaign-day, paused "
              f"{len(delays) / len(fatigued):.0%}, median delay "
              f"{statistics.median(delays) if delays else math.nan:.0f} event-minutes")


if __name__ == "__main__":
    main()
