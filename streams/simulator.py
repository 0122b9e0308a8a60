"""Realistic campaign traffic with its ground truth written beside it.

Each campaign runs K creatives with their own true click and conversion rates; one creative per
campaign fatigues (its click-through drops by ``fatigue_drop`` from a known moment); traffic and
engagement follow an hour-of-day curve; organic posts get reactions, shares and comments whose
volume depends on the hour and the topic; comments carry real-looking text, some with an inline
sentiment label and some labelled later; some campaigns get a sentiment crisis (a burst of negative
comments) at a known time; spend accrues per impression.  Deterministic for a seed.

``simulate`` yields events (dicts in the v1 input contract) minute by minute in event-time order
(a click or conversion may run a few seconds into the next minute: real streams are a little out
of order) and returns the ``Truth`` that decisions are scored against.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Final

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 60 * MINUTE_MS
START_MS: Final = 1_795_651_200_000  # 2026-11-26T00:00:00Z
PLATFORMS: Final = ("facebook", "instagram", "x", "tiktok", "linkedin")
SEGMENTS: Final = ("18-24", "25-34", "35-44", "45+")
TOPICS: Final = ("sale", "launch", "behindthescenes", "giveaway", "tips", "news", "community",
                 "sustainability")
POSITIVE: Final = ("love this, great job", "amazing product, thank you!", "best purchase ever",
                   "so happy with it", "this is awesome, well done", "great service, fast delivery")
NEUTRAL: Final = ("when does it ship?", "is this available in blue?", "saw this yesterday",
                  "how much is it", "ok, noted", "what sizes do you have")
NEGATIVE: Final = ("terrible quality, want a refund", "worst support ever, still waiting",
                   "this is a scam, avoid", "broken after one day, awful", "very disappointed",
                   "never buying again, horrible experience")


@dataclass
class CampaignTruth:
    campaign_id: str
    platform: str
    ctr: dict[str, float]  # creative -> true click-through before fatigue
    conversion_rate: dict[str, float]  # creative -> P(conversion | click)
    fatigue: dict[str, Any]  # creative, start_ms, drop
    crisis: dict[str, Any] | None  # start_ms, end_ms
    topic_effect: dict[str, float]
    best_hours: list[int]

    def ctr_at(self, creative: str, ts_ms: int) -> float:
        """The creative's true click-through at ``ts_ms``, fatigue included."""
        ctr = self.ctr[creative]
        if self.fatigue["creative"] == creative and ts_ms >= self.fatigue["start_ms"]:
            ctr *= 1 - self.fatigue["drop"]
        return ctr


@dataclass
class Truth:
    seed: int
    start_ms: int
    end_ms: int
    campaigns: list[CampaignTruth] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hour_factor(hour: int) -> float:
    """Audience activity by hour of day (UTC): low at night, peaks at 12:00 and 20:00."""
    return 0.25 + math.exp(-((hour - 12) ** 2) / 8) + 1.2 * math.exp(-((hour - 20) ** 2) / 6)


def parse_duration(text: str) -> int:
    """'90s', '30m', '24h', '2d' -> milliseconds."""
    units = {"s": 1000, "m": MINUTE_MS, "h": HOUR_MS, "d": 24 * HOUR_MS}
    try:
        value, unit = float(text[:-1]), units[text[-1]]
    except (KeyError, ValueError, IndexError):
        raise ValueError(f"duration must look like 90s, 30m, 24h or 2d, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"duration must be positive, got {text!r}")
    return int(value * unit)


def simulate(campaigns: int = 8, creatives: int = 4, duration_ms: int = 24 * HOUR_MS,
             seed: int = 1, impressions_per_minute: float = 12.0,
             crisis_share: float = 0.5, fatigue_drop: float = 0.5,
             ) -> tuple[Iterator[dict[str, Any]], Truth]:
    """(events in event-time order, ground truth)."""
    rng = random.Random(seed)
    truth = Truth(seed, START_MS, START_MS + duration_ms)
    for c in range(campaigns):
        cid = f"sim-{c:03d}"  # apart from the sample events' camp-NNN
        names = [f"{cid}-cr{k}" for k in range(creatives)]
        fatigued = rng.choice(names)
        crisis = None
        if rng.random() < crisis_share:
            start = START_MS + int(duration_ms * rng.uniform(0.3, 0.7))
            crisis = {"start_ms": start, "end_ms": start + 2 * HOUR_MS}
        topic_effect = {t: round(rng.uniform(0.5, 2.0), 3) for t in TOPICS}
        truth.campaigns.append(CampaignTruth(
            cid, rng.choice(PLATFORMS),
            {n: round(rng.uniform(0.01, 0.08), 4) for n in names},
            {n: round(rng.uniform(0.02, 0.15), 4) for n in names},
            {"creative": fatigued, "start_ms": START_MS + int(duration_ms * rng.uniform(0.2, 0.6)),
             "drop": fatigue_drop},
            crisis, topic_effect, sorted(range(24), key=lambda h: -hour_factor(h))[:3]))
    return _events(truth, rng, impressions_per_minute), truth


def _events(truth: Truth, rng: random.Random, per_minute: float) -> Iterator[dict[str, Any]]:
    counter = 0
    pending: list[tuple[int, int, dict[str, Any]]] = []  # engagement scheduled for later
    labels: list[tuple[int, int, dict[str, Any]]] = []
    owed: dict[str, float] = {}  # creative -> spend not billed yet

    def event(kind: str, c: CampaignTruth, ts: int, **extra: Any) -> dict[str, Any]:
        nonlocal counter
        counter += 1
        return {"event_id": f"sim-{truth.seed}-{counter:09d}", "ts": ts, "type": kind,
                "platform": c.platform, "campaign_id": c.campaign_id, **extra}

    for minute_start in range(truth.start_ms, truth.end_ms, MINUTE_MS):
        hour = (minute_start // HOUR_MS) % 24
        activity = hour_factor(hour)
        batch: list[dict[str, Any]] = []
        for c in truth.campaigns:
            in_crisis = c.crisis is not None and \
                c.crisis["start_ms"] <= minute_start < c.crisis["end_ms"]
            for creative in c.ctr:
                n = _poisson(rng, per_minute * activity / len(c.ctr))
                ctr = c.ctr_at(creative, minute_start)
                for _ in range(n):
                    ts = minute_start + rng.randrange(MINUTE_MS)
                    segment = rng.choice(SEGMENTS)
                    batch.append(event("impression", c, ts, creative_id=creative, segment=segment))
                    owed[creative] = owed.get(creative, 0.0) + 0.01  # CPM 10
                    if rng.random() < ctr:
                        batch.append(event("click", c, ts + 500, creative_id=creative,
                                           segment=segment))
                        if rng.random() < c.conversion_rate[creative]:
                            batch.append(event("conversion", c, ts + 60_000, creative_id=creative,
                                               amount=round(rng.uniform(20, 120), 2),
                                               currency="USD"))
                if owed.get(creative) and (minute_start // MINUTE_MS) % 10 == 9:  # billed / 10 min
                    batch.append(event("spend", c, minute_start + MINUTE_MS - 1,
                                       creative_id=creative, amount=round(owed.pop(creative), 2),
                                       currency="USD"))
            if rng.random() < activity / 90:  # about one post per hour at peak
                batch.extend(_post(event, c, minute_start + rng.randrange(MINUTE_MS), hour, rng,
                                   pending))
            comments = _poisson(rng, (3.0 if in_crisis else 0.15) * activity)
            for _ in range(comments):
                ts = minute_start + rng.randrange(MINUTE_MS)
                mood = ("negative" if rng.random() < 0.75 else "neutral") if in_crisis else \
                    rng.choices(("positive", "neutral", "negative"), (0.5, 0.35, 0.15))[0]
                text = rng.choice({"positive": POSITIVE, "neutral": NEUTRAL,
                                   "negative": NEGATIVE}[mood])
                extra: dict[str, Any] = {"post_id": f"{c.campaign_id}-p{rng.randrange(10)}",
                                         "text": text, "lang": "en",
                                         "author_id": f"u{rng.randrange(100_000)}"}
                if rng.random() < 0.3:
                    extra["sentiment"] = mood
                comment = event("comment", c, ts, **extra)
                batch.append(comment)
                if "sentiment" not in extra and rng.random() < 0.2:
                    delay = rng.randrange(5 * MINUTE_MS, 6 * HOUR_MS)
                    labels.append((ts + delay, counter, {"campaign": c, "target": comment,
                                                          "sentiment": mood}))
        due_at = minute_start + MINUTE_MS
        for ts, _, spec in _pop_due(pending, due_at):
            batch.append(event(spec["type"], spec["campaign"], ts, post_id=spec["post_id"],
                               segment=spec["segment"]))
        for ts, _, spec in _pop_due(labels, due_at):
            batch.append(event("label", spec["campaign"], ts,
                               target_event_id=spec["target"]["event_id"],
                               sentiment=spec["sentiment"]))
        batch.sort(key=lambda e: e["ts"])
        yield from batch


def _post(event: Any, c: CampaignTruth, ts: int, hour: int, rng: random.Random,
          pending: list[tuple[int, int, dict[str, Any]]]) -> list[dict[str, Any]]:
    post_id = f"{c.campaign_id}-post-{ts}"
    topics = rng.sample(TOPICS, 2)
    post = event("post", c, ts, post_id=post_id, topics=topics, lang="en",
                 text=f"New from us: {topics[0]} and {topics[1]}. Tell us what you think!")
    expected = 8.0 * hour_factor(hour) * math.prod(c.topic_effect[t] for t in topics)
    for _ in range(_poisson(rng, expected)):
        delay = int(rng.expovariate(1 / (2 * HOUR_MS)))
        kind = rng.choices(("reaction", "share"), (0.8, 0.2))[0]
        pending.append((ts + delay, len(pending), {"type": kind, "campaign": c,
                                                   "post_id": post_id,
                                                   "segment": rng.choice(SEGMENTS)}))
    return [post]


def _pop_due(items: list[tuple[int, int, dict[str, Any]]],
             before: int) -> list[tuple[int, int, dict[str, Any]]]:
    due = [i for i in items if i[0] < before]
    if due:
        items[:] = [i for i in items if i[0] >= before]
    return sorted(due, key=lambda i: (i[0], i[1]))


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method; lam is small here."""
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def aggregate(events: Iterable[dict[str, Any]], interval_ms: int) -> list[dict[str, Any]]:
    """The same traffic as ad platforms report delivery: the impressions, clicks and conversions
    of each creative in each interval as one event with a ``count`` (a conversion's ``amount``
    their total value), at the interval's last millisecond; every other event as it is.  Sorted
    by event time, aggregated events after the others of the same millisecond."""
    kept: list[dict[str, Any]] = []
    totals: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for event in events:
        if event["type"] not in ("impression", "click", "conversion"):
            kept.append(event)
            continue
        start = event["ts"] - event["ts"] % interval_ms
        key = (event["campaign_id"], event["creative_id"], event["type"], start)
        total = totals.get(key)
        if total is None:
            total = totals[key] = {
                "event_id": f"{event['campaign_id']}-{event['creative_id']}-{event['type']}-"
                            f"{start}",
                "ts": start + interval_ms - 1, "type": event["type"],
                "platform": event["platform"], "campaign_id": event["campaign_id"],
                "creative_id": event["creative_id"], "count": 0}
            if event["type"] == "conversion":
                total.update(amount=0.0, currency=event["currency"])
        total["count"] += 1
        if "amount" in total:
            total["amount"] = round(total["amount"] + event["amount"], 2)
    order = {"impression": 0, "click": 1, "conversion": 2}
    counted = sorted(totals.values(), key=lambda e: (e["ts"], order[e["type"]]))
    return list(heapq.merge(sorted(kept, key=lambda e: e["ts"]), counted,
                            key=lambda e: e["ts"]))
