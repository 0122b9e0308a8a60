"""Deterministic mixed event streams for tests, benchmarks and the bundled demo sample.

Valid events of every type in realistic proportions, and invalid payloads of many kinds, each with
the reason code the contract gives it.  Every payload is one line (no newline) so it can travel
alone, inside a batch, or through kcat's line-based input.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from streams.events import Reason

TYPE_WEIGHTS = {"impression": 40, "click": 8, "reaction": 14, "comment": 10, "post": 3,
                "share": 5, "spend": 8, "conversion": 3, "label": 2}
PLATFORMS = ["facebook", "instagram", "x", "tiktok", "linkedin", "youtube"]
PHRASES = ["love this colour", "shipping took two weeks, not happy", "where can I buy it?",
           "the new ad is hilarious", "price is too high honestly", "great customer service",
           "this broke after one day", "can't wait for the summer drop", "meh", "so cute!!"]
TOPICS = ["summer", "sale", "eco", "fashion", "tech", "giveaway", "travel", "fitness"]
T0_MS = 1_795_687_200_000  # 2026-11-26T10:00:00Z


@dataclass(frozen=True)
class Payload:
    raw: bytes
    campaign_id: str | None  # the key a well-behaved producer would use
    type: str | None  # event type if valid
    reason: Reason | None  # expected dead-letter reason if invalid


def valid_event(rng: random.Random, i: int, campaigns: int) -> dict[str, Any]:
    etype = rng.choices(list(TYPE_WEIGHTS), weights=list(TYPE_WEIGHTS.values()))[0]
    campaign = rng.randrange(campaigns)
    event: dict[str, Any] = {
        "event_id": f"ev-{i:08d}", "type": etype, "platform": rng.choice(PLATFORMS),
        "campaign_id": f"camp-{campaign:03d}",
        "ts": T0_MS + i * 250 if i % 2 else _rfc3339(T0_MS + i * 250),
        "segment": rng.choice(["18-24", "25-34", "35-54"]), "lang": "en",
    }
    if etype in ("impression", "click", "spend", "conversion"):
        event["creative_id"] = f"cr-{campaign:03d}-{rng.randrange(4)}"
    if etype in ("spend", "conversion"):
        event["amount"] = round(rng.uniform(0.05, 80.0), 2)
        event["currency"] = "EUR"
    if etype in ("post", "comment", "reaction", "share"):
        event["post_id"] = f"post-{campaign:03d}-{rng.randrange(20)}"
        event["author_id"] = f"u-{rng.randrange(10_000)}"
    if etype in ("post", "comment"):
        event["text"] = " ".join(rng.sample(PHRASES, 2))
        event["topics"] = rng.sample(TOPICS, rng.randrange(3))
    if etype == "comment" and rng.random() < 0.3:
        event["sentiment"] = rng.choice(["positive", "neutral", "negative"])
    if etype == "label":
        event["target_event_id"] = f"ev-{max(i - 50, 0):08d}"
        event["sentiment"] = rng.choice(["positive", "neutral", "negative"])
    return event


def _rfc3339(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _invalid_kinds() -> list[tuple[Reason, Callable[[dict[str, Any]], bytes]]]:
    def dumps(change: dict[str, Any]) -> Callable[[dict[str, Any]], bytes]:
        return lambda e: orjson.dumps({**e, **change})

    def drop(field: str) -> Callable[[dict[str, Any]], bytes]:
        return lambda e: orjson.dumps({k: v for k, v in e.items() if k != field})

    return [
        (Reason.INVALID_JSON, lambda e: orjson.dumps(e)[:-7]),
        (Reason.INVALID_JSON, lambda e: b"not json " + e["event_id"].encode()),
        (Reason.NOT_AN_OBJECT, lambda e: orjson.dumps([e["event_id"], 1])),
        (Reason.INVALID_UTF8, lambda e: orjson.dumps({**e, "text": "caf\u00e9"}).replace(
            "\u00e9".encode(), b"\xe9")),
        (Reason.NON_FINITE_NUMBER, lambda e: orjson.dumps(e)[:-1] + b',"amount":NaN}'),
        (Reason.NON_FINITE_NUMBER, lambda e: orjson.dumps(e)[:-1] + b',"amount":1e400}'),
        (Reason.MISSING_FIELD, drop("event_id")),
        (Reason.MISSING_FIELD, drop("ts")),
        (Reason.MISSING_FIELD, drop("platform")),
        (Reason.WRONG_TYPE, dumps({"topics": "not-a-list"})),
        (Reason.WRONG_TYPE, dumps({"ts": True})),
        (Reason.UNKNOWN_TYPE, dumps({"type": "tweet"})),
        (Reason.UNKNOWN_PLATFORM, dumps({"platform": "myspace"})),
        (Reason.UNKNOWN_SENTIMENT, dumps({"sentiment": "furious"})),
        (Reason.INVALID_STRING, dumps({"post_id": "", "creative_id": ""})),
        (Reason.TEXT_TOO_LONG, dumps({"text": "y" * 10_001})),
        (Reason.TOO_MANY_TOPICS, dumps({"topics": [f"t{i}" for i in range(51)]})),
        (Reason.INVALID_TIMESTAMP, dumps({"ts": "2026-11-26 10:00"})),
        (Reason.INVALID_TIMESTAMP, dumps({"ts": 1_795_687_200})),
        (Reason.UNSUPPORTED_SCHEMA_VERSION, dumps({"schema_version": 2})),
        (Reason.INVALID_AMOUNT, dumps({"amount": -3})),
        (Reason.INVALID_CURRENCY, dumps({"currency": "euros"})),
    ]


def mixed(n: int, *, invalid_share: float = 0.05, seed: int = 7, campaigns: int = 20,
          start: int = 0) -> Iterator[Payload]:
    """``n`` payloads, about ``invalid_share`` of them invalid, cycling through every kind."""
    rng = random.Random(seed)
    kinds = _invalid_kinds()
    bad = 0
    for i in range(start, start + n):
        event = valid_event(rng, i, campaigns)
        if rng.random() < invalid_share:
            reason, make = kinds[bad % len(kinds)]
            bad += 1
            yield Payload(make(event), event["campaign_id"], None, reason)
        else:
            yield Payload(orjson.dumps(event), event["campaign_id"], event["type"], None)


def is_json(raw: bytes) -> bool:
    """Whether a line parses as JSON (what `socialstream produce` sends rather than reports)."""
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True
