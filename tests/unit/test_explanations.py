"""Every explanation is true and checkable: over a simulated day, each number in a
recommendation's sentence is recomputed from its evidence (and, for what it recommends, its params)
and must agree to the precision printed."""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from streams.models.engagement import HOUR_MS
from streams.replay import replay
from streams.simulator import simulate

Rec = dict[str, Any]
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _pct(x: float) -> float:
    return 100 * x


def _shift_budget(r: Rec) -> list[float]:
    p, to, source = r["evidence"]["p_best"], r["params"]["to"], r["params"]["from"]
    if r["reason"] == "retest_defunded_creative":
        return _retest(r)
    assert r["reason"] == "bandit_best_creative"
    return [len(p), _pct(p[to]), _pct(p[source]), _pct(r["params"]["share"])]


def _retest(r: Rec) -> list[float]:
    e, params = r["evidence"], r["params"]
    assert e["leader"] == params["from"] and params["impressions"] == e["retest_impressions"]
    assert params["shares"][params["to"]] == pytest.approx(e["retest_share"], abs=1e-3)
    expected = e["leader_conversion_rate"] * e["impressions"]  # Poisson chance of so few
    chance = sum(math.exp(-expected) * expected ** k / math.factorial(k)
                 for k in range(e["conversions"] + 1))
    assert chance == pytest.approx(e["chance_as_good_as_leader"], abs=1e-3)
    return [_pct(e["share_floor"]), e["defunded_hours"], e["conversions"], e["impressions"],
            _pct(e["leader_conversion_rate"]), _pct(e["chance_as_good_as_leader"]),
            _pct(e["retest_share"]), _pct(params["share"]), e["retest_impressions"]]


def _budget(r: Rec) -> list[float]:
    e = r["evidence"]
    return [e["cpa_recent"], _pct(abs(1 - e["cpa_recent"] / e["cpa_campaign"])),
            e["cpa_campaign"], e["conversions"]]


def _pause(r: Rec) -> list[float]:
    e = r["evidence"]
    recent = e["recent_clicks"] / e["recent_impressions"]
    return [_pct(1 - recent / e["reference_ctr"]), _pct(e["reference_ctr"]), e["recent_clicks"],
            e["recent_impressions"], _pct(recent)]


def _boost(r: Rec) -> list[float]:
    e = r["evidence"]
    out = [e["engagements"], e["age_hours"], e["engagements"] / e["expected"], e["expected"],
           e["horizon_hours"]]
    assert e["baseline"] in ("model", "campaign_median")
    return out + ([e["campaign_posts"]] if e["baseline"] == "campaign_median" else [])


def _alert(r: Rec) -> list[float]:
    e = r["evidence"]
    return [_pct(e["negative_share_recent"]), _pct(e["negative_share_baseline"]), e["texts"]]


def _schedule(r: Rec) -> list[float]:
    by_hour, now = r["evidence"]["predicted_by_hour"], r["evidence"]["posted_hour_utc"]
    best = r["params"]["hours_utc"][0]
    assert by_hour[best] == max(by_hour)
    return [_pct(by_hour[best] / by_hour[now] - 1), best, by_hour[best], now, by_hour[now]]


def _promote(r: Rec) -> list[float]:
    predicted, mean = r["evidence"]["predicted"], r["evidence"]["average"]
    best = r["params"]["topic"]
    assert predicted[best] == max(predicted.values())
    assert mean == pytest.approx(statistics.mean(predicted.values()), abs=0.01)
    return [_pct(predicted[best] / mean - 1), predicted[best], mean, len(predicted)]


EXPECTED: dict[str, Callable[[Rec], list[float]]] = {
    "shift_budget": _shift_budget, "increase_budget": _budget, "decrease_budget": _budget,
    "pause_creative": _pause, "boost_post": _boost, "sentiment_alert": _alert,
    "respond_to_comments": lambda r: [r["evidence"]["count"]],
    "schedule_post": _schedule, "promote_topic": _promote,
}


def said(rec: Rec) -> list[str]:
    """The numbers in the sentence, once ids (creatives, posts, campaigns) are taken out."""
    text = rec["explanation"]
    names = [rec["target"], rec["campaign_id"], *(str(v) for v in rec["params"].values()
                                                    if isinstance(v, str))]
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, " ")
    return NUMBER.findall(re.sub(r"(\d+):00 UTC|(\d+):00", r"\1\2", text))


def check(rec: Rec) -> None:
    printed = said(rec)
    expected = EXPECTED[rec["action"]](rec)
    assert len(printed) == len(expected), (rec["explanation"], expected)
    for text, value in zip(printed, expected, strict=True):
        decimals = len(text.split(".")[1]) if "." in text else 0
        assert abs(float(text) - value) <= 0.5 * 10 ** -decimals + 1e-9, \
            (rec["explanation"], text, value)


@pytest.fixture(scope="module")
def day() -> list[Rec]:
    events, _ = simulate(campaigns=6, creatives=3, duration_ms=24 * HOUR_MS, seed=1,
                         crisis_share=0.5, fatigue_drop=0.6)
    out: list[bytes] = []
    replay((orjson.dumps(e) for e in events), emit=out.append)
    return [orjson.loads(line) for line in out]


def test_every_number_in_every_explanation_comes_from_its_evidence(day: list[Rec]) -> None:
    seen = Counter(r["action"] for r in day)
    assert len(seen) >= 8, seen  # nearly every rule spoke in the day
    for rec in day:
        check(rec)


def test_boosts_name_their_baseline_and_never_use_an_unlearned_model(day: list[Rec]) -> None:
    boosts = [r for r in day if r["action"] == "boost_post"]
    assert boosts
    for rec in boosts:
        versions, evidence = rec["model_versions"], rec["evidence"]
        if evidence["baseline"] == "model":
            assert versions["post_engagement"] >= 20
        assert rec["evidence"]["engagements"] >= 2 * evidence["expected"] - 0.05 * evidence[
            "expected"]
