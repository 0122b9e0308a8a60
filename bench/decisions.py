"""Decision quality on simulated campaigns whose truth is known (streams/simulator.py).

- allocation: conversions a campaign gets when its impressions follow socialstream's
  shift_budget recommendations (closed loop: the traffic follows the shares, the policy sees that
  traffic), as a share of the oracle (every impression on the truly best creative of the moment),
  next to a uniform split and epsilon-greedy on observed conversion rates, in the same run;
- crises: share of injected sentiment crises alerted, median delay in event minutes and in the
  campaign's events, false alerts per campaign-day on crisis-free traffic;
- fatigue: fatigued creatives paused, median delay from a 40% click-through drop to
  pause_creative, and pauses of healthy creatives (or before the drop) per campaign-day;
- content: how good the topics of promote_topic and the hours of schedule_post truly are;
- volume: recommendations per campaign-hour.

Run: .venv/bin/python -m bench.decisions [--days 2 --seeds 8 --first-seed 0
                                          --impressions-per-minute 48 --only allocation|detection]
Fewer seeds are noisy: with 3, renaming the campaigns moved the allocation median by 0.08.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections import Counter
from typing import Any

import orjson

from streams.events import SocialEvent, decode
from streams.pipeline import Pipeline
from streams.replay import replay
from streams.simulator import (
    HOUR_MS,
    MINUTE_MS,
    START_MS,
    TOPICS,
    CampaignTruth,
    aggregate,
    hour_factor,
    simulate,
)
from streams.training import Trainer


def value(c: CampaignTruth, creative: str, ts: int) -> float:
    """Expected conversions per impression."""
    return c.ctr_at(creative, ts) * c.conversion_rate[creative]


def allocation(c: CampaignTruth, minutes: int, per_minute: int, strategy: str,
               seed: int, aggregated: bool = False) -> float:
    """Expected conversions over the run when impressions are split by ``strategy``."""
    rng = random.Random(seed)
    creatives = sorted(c.ctr)
    shares = {k: 1 / len(creatives) for k in creatives}
    seen = {k: [0, 0] for k in creatives}  # impressions, conversions (epsilon-greedy)
    trainer = Trainer()
    pipeline = Pipeline(trainer.models)
    total = 0.0
    counter = 0
    for m in range(minutes):
        ts = START_MS + m * MINUTE_MS
        if strategy == "oracle":
            best = max(creatives, key=lambda k: value(c, k, ts))
            split = {k: float(k == best) for k in creatives}
        elif strategy == "uniform":
            split = dict.fromkeys(creatives, 1 / len(creatives))
        elif strategy == "epsilon_greedy":
            best = max(creatives, key=lambda k: (seen[k][1] + 1) / (seen[k][0] + 50))
            split = {k: 0.1 / len(creatives) + 0.9 * (k == best) for k in creatives}
        else:
            split = shares
        total += sum(per_minute * split[k] * value(c, k, ts) for k in creatives)
        events: list[dict[str, Any]] = []
        for k in creatives:  # the traffic this split buys, as the policy would see it
            n = sum(1 for _ in range(per_minute) if rng.random() < split[k])
            for _ in range(n):
                counter += 1
                base = {"ts": ts + rng.randrange(MINUTE_MS), "platform": c.platform,
                        "campaign_id": c.campaign_id, "creative_id": k}
                events.append({**base, "event_id": f"a{counter}", "type": "impression"})
                seen[k][0] += 1
                if rng.random() < c.ctr_at(k, ts):
                    events.append({**base, "event_id": f"c{counter}", "type": "click"})
                    if rng.random() < c.conversion_rate[k]:
                        seen[k][1] += 1
                        events.append({**base, "event_id": f"v{counter}", "type": "conversion",
                                       "amount": 50, "currency": "USD"})
        events.sort(key=lambda e: e["ts"])
        if aggregated:  # the minute's delivery as counts per creative, as ad platforms report
            events = aggregate(events, MINUTE_MS)
        for raw in events:
            event = decode(orjson.dumps(raw))
            assert isinstance(event, SocialEvent)
            outcome = pipeline.process(event)
            for example in outcome.examples:
                trainer.learn(example)
            for rec in outcome.recommendations:  # a user who follows them
                if rec.action == "shift_budget":
                    shares = {k: rec.params["shares"].get(k, 0.0) for k in creatives}
    return total


def run_allocation(days: int, seeds: range, per_minute: int, aggregated: bool) -> None:
    ratios: dict[str, list[float]] = {"socialstream": [], "uniform": [], "epsilon_greedy": []}
    for seed in seeds:
        _, truth = simulate(campaigns=4, creatives=4, duration_ms=days * 24 * HOUR_MS, seed=seed)
        for i, c in enumerate(truth.campaigns):
            minutes = days * 24 * 60
            oracle = allocation(c, minutes, per_minute, "oracle", seed * 100 + i)
            for name in ratios:
                got = allocation(c, minutes, per_minute, name, seed * 100 + i, aggregated)
                ratios[name].append(got / oracle)
    print("allocation (expected conversions as a share of the oracle; median over "
          f"{len(ratios['uniform'])} campaigns, {days} day(s) each, {per_minute} impressions/min):")
    for name, values in ratios.items():
        print(f"  {name:<15} {statistics.median(values):.3f}  "
              f"(worst campaign {min(values):.3f}, best {max(values):.3f})"
              + ("  target: median >= 0.90" if name == "socialstream" else ""))


def run_detection(days: int, seeds: range, aggregated: bool, per_minute: int) -> None:
    delays_min: list[float] = []
    delays_events: list[int] = []
    fatigue_min: list[float] = []
    crises = detected = 0
    false_alerts = campaign_days = false_pauses = 0
    topic_ranks: list[int] = []
    hour_value: list[float] = []
    best_hour = max(hour_factor(h) for h in range(24))
    volume: Counter[str] = Counter()
    hours = 0.0
    for seed in seeds:
        for crisis_share in (1.0, 0.0):
            events, truth = simulate(campaigns=8, creatives=4, duration_ms=days * 24 * HOUR_MS,
                                     seed=seed, crisis_share=crisis_share, fatigue_drop=0.4,
                                     impressions_per_minute=per_minute)
            if aggregated:
                events = iter(aggregate(events, MINUTE_MS))
            lines = [orjson.dumps(e) for e in events]
            emitted: list[bytes] = []
            replay(lines, emit=emitted.append)
            recs = [orjson.loads(line) for line in emitted]
            hours += len(truth.campaigns) * days * 24
            volume.update(r["action"] for r in recs)
            by_campaign: dict[str, list[dict[str, Any]]] = {}
            for r in recs:
                by_campaign.setdefault(r["campaign_id"], []).append(r)
            times = [orjson.loads(line) for line in lines]
            for c in truth.campaigns:
                mine = by_campaign.get(c.campaign_id, [])
                alerts = [r for r in mine if r["action"] == "sentiment_alert"]
                if c.crisis is None:
                    false_alerts += len(alerts)
                    campaign_days += days
                else:
                    crises += 1
                    start, end = c.crisis["start_ms"], c.crisis["end_ms"]
                    hit = [a for a in alerts if start <= a["event_time"] <= end + 2 * HOUR_MS]
                    false_alerts += len(alerts) - len(hit)
                    campaign_days += days
                    if hit:
                        detected += 1
                        at = hit[0]["event_time"]
                        delays_min.append((at - start) / MINUTE_MS)
                        delays_events.append(sum(1 for e in times if e["campaign_id"] ==
                                                 c.campaign_id and start <= e["ts"] <= at))
                ranked = sorted(c.topic_effect, key=lambda t: -c.topic_effect[t])
                for r in mine:
                    if r["action"] == "promote_topic":
                        topic_ranks.append(ranked.index(r["params"]["topic"]) + 1)
                    elif r["action"] == "schedule_post":
                        hour_value.append(hour_factor(r["params"]["hours_utc"][0]) / best_hour)
                all_pauses = [r for r in mine if r["action"] == "pause_creative"]
                pauses = [r for r in all_pauses if r["target"] == c.fatigue["creative"]
                          and r["event_time"] >= c.fatigue["start_ms"]]
                false_pauses += len(all_pauses) - len(pauses)
                if pauses:
                    fatigue_min.append((pauses[0]["event_time"] - c.fatigue["start_ms"])
                                       / MINUTE_MS)
    print(f"crises: {detected}/{crises} detected ({detected / max(crises, 1):.0%}); median delay "
          f"{statistics.median(delays_min) if delays_min else float('nan'):.1f} event-minutes, "
          f"{statistics.median(delays_events) if delays_events else float('nan'):.0f} events; "
          f"false alerts {false_alerts / max(campaign_days, 1):.3f} per campaign-day")
    fatigued = len(seeds) * 2 * 8
    median_delay = statistics.median(fatigue_min) if fatigue_min else float("nan")
    healthy = false_pauses / max(campaign_days, 1)
    print(f"fatigue (40% CTR drop): paused {len(fatigue_min)} of {fatigued} fatigued creatives "
          f"({len(fatigue_min) / fatigued:.0%}, target >= 80%); median delay {median_delay:.0f} "
          f"event-minutes (target <= 120); healthy creatives paused {healthy:.3f} per "
          "campaign-day (target <= 0.05)")
    top3 = sum(1 for r in topic_ranks if r <= 3) / max(len(topic_ranks), 1)
    print(f"content: promote_topic named one of the campaign's true top 3 of {len(TOPICS)} topics "
          f"in {top3:.0%} of {len(topic_ranks)} (chance {3 / len(TOPICS):.0%}); schedule_post's "
          f"first hour has {statistics.mean(hour_value) if hour_value else float('nan'):.2f} of "
          f"the best hour's audience on average over {len(hour_value)} (an average hour: "
          f"{statistics.mean(hour_factor(h) for h in range(24)) / best_hour:.2f})")
    print(f"volume: {sum(volume.values()) / hours:.2f} recommendations per campaign-hour "
          f"({', '.join(f'{a} {n / hours:.3f}' for a, n in volume.most_common())})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="e.g. 8 with --seeds 32: campaigns a policy change was not tuned on")
    parser.add_argument("--impressions-per-minute", type=int, default=12,
                        help="per campaign: the evidence there is for allocation and fatigue")
    parser.add_argument("--only", choices=("allocation", "detection"))
    parser.add_argument("--aggregate", action="store_true",
                        help="impressions, clicks and conversions as counts per creative per "
                        "minute (socialstream simulate --aggregate 1m), not one event each")
    args = parser.parse_args()
    print("input: " + ("counts per creative per minute" if args.aggregate
                       else "one event per impression, click and conversion")
          + f"; {args.impressions_per_minute} impressions a minute per campaign at peak hours")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if args.only != "detection":
        run_allocation(args.days, seeds, args.impressions_per_minute, args.aggregate)
    if args.only != "allocation":
        run_detection(args.days, seeds, args.aggregate, args.impressions_per_minute)


if __name__ == "__main__":
    main()
