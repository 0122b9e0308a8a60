"""Each action fires on a crafted state, not below its evidence threshold nor within its cooldown;
ids are deterministic; every recommendation validates against the shipped JSON Schema."""

from __future__ import annotations

import json
import random
from importlib.resources import files
from typing import Any

import jsonschema
import orjson

from streams.events import SocialEvent, decode
from streams.models.engagement import HOUR_MS, post_features
from streams.policy import Policy, Recommendation
from streams.policy.allocation import observe
from streams.policy.guardrails import RETEST_IMPRESSIONS
from streams.records import (
    Arm,
    CreativeStats,
    Defunded,
    NegativeShare,
    Pacing,
    PendingPost,
    PostTraits,
)
from streams.replay import replay
from streams.state import CampaignState
from streams.training import Models
from tests.eventgen import T0_MS, mixed

SCHEMA = json.loads(files("streams").joinpath("schemas/recommendation.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
DAY = T0_MS - T0_MS % (24 * HOUR_MS)  # midnight UTC


def ev(type_: str, event_id: str = "e", ts: int = T0_MS, **extra: Any) -> SocialEvent:
    raw = {"event_id": event_id, "ts": ts, "type": type_, "platform": "x", "campaign_id": "c",
           **extra}
    event = decode(orjson.dumps(raw))
    assert isinstance(event, SocialEvent), event
    return event


def decide(state: CampaignState, event: SocialEvent, predicted: str | None = None,
           models: Models | None = None) -> list[Recommendation]:
    recs = Policy().decide(state, event, models or Models(), predicted)
    for rec in recs:
        VALIDATOR.validate(rec.to_dict())
    return recs


def actions(recs: list[Recommendation]) -> list[str]:
    return [r.action for r in recs]


def bandit_state(impressions: int) -> CampaignState:
    state = CampaignState("c")
    state.creatives = {"A": CreativeStats(impressions, 30, 0, 0.0, T0_MS),
                       "B": CreativeStats(impressions, 3, 0, 0.0, T0_MS)}
    state.memory["arms"] = {"A": Arm(30.0, impressions - 30.0), "B": Arm(3.0, impressions - 3.0)}
    return state


def test_shift_budget_moves_a_capped_share_to_the_best_creative() -> None:
    state = bandit_state(300)
    [rec] = decide(state, ev("impression", creative_id="A"))
    assert rec.action == "shift_budget" and rec.params["to"] == "A" and rec.params["from"] == "B"
    assert rec.params["share"] == 0.2  # the cap on one move
    assert rec.params["shares"] == {"A": 0.7, "B": 0.3}
    assert rec.confidence > 0.9


def test_shift_budget_keeps_the_share_of_a_creative_short_of_evidence() -> None:
    state = bandit_state(300)
    state.creatives["C"] = CreativeStats(50, 1, 0, 0.0, T0_MS)
    state.memory["arms"]["C"] = Arm(0.0, 50.0)
    [rec] = decide(state, ev("impression", creative_id="A"))
    shares = rec.params["shares"]
    assert set(shares) == {"A", "B", "C"} and abs(shares["C"] - 1 / 3) < 1e-3
    assert abs(sum(shares.values()) - 1) < 1e-3 and rec.params["from"] == "B"


def test_shift_budget_gives_budget_back_to_a_creative_that_may_be_the_best() -> None:
    state = bandit_state(300)
    state.creatives["C"] = CreativeStats(300, 36, 0, 0.0, T0_MS)
    state.memory["arms"]["C"] = Arm(36.0, 264.0)  # likelier the best than A, but without budget
    state.memory["shares"] = {"A": 0.9, "B": 0.1, "C": 0.0}
    [rec] = decide(state, ev("impression", creative_id="A"))
    assert rec.params["to"] == "C" and rec.params["from"] == "A" and rec.params["share"] == 0.2


def test_shift_budget_never_pays_a_creative_less_likely_the_best_than_the_payer() -> None:
    state = bandit_state(300)
    state.creatives["C"] = CreativeStats(300, 28, 0, 0.0, T0_MS)
    state.memory["arms"]["C"] = Arm(28.0, 272.0)  # nearly as good as A: under its target share,
    state.memory["shares"] = {"A": 0.9, "B": 0.1, "C": 0.0}  # but A would pay and is likelier
    assert decide(state, ev("impression", creative_id="A")) == []


def test_shift_budget_reads_click_through_before_conversions_say_much() -> None:
    """One conversion each in 400 impressions, but A drew 32 clicks and B 4: A likelier converts
    more per impression (conversions per click are shrunk toward the campaign's), so budget moves
    to A. Without clicks (a producer that sends none) they are a coin toss."""
    def state_without_clicks() -> CampaignState:
        state = CampaignState("c")
        state.creatives = {"A": CreativeStats(400, 32, 1, 0.0, T0_MS),
                           "B": CreativeStats(400, 4, 1, 0.0, T0_MS)}
        state.memory["arms"] = {"A": Arm(1.0, 399.0), "B": Arm(1.0, 399.0)}
        return state

    for rec in decide(state_without_clicks(), ev("impression", "e1", creative_id="A")):
        assert max(rec.evidence["p_best"].values()) < 0.7
    state = state_without_clicks()
    for creative, clicks in (("A", 32), ("B", 4)):
        observe(state.memory, ev("click", creative_id=creative, count=clicks))
    assert state.memory["arms"]["A"].clicks == 32.0
    [rec] = decide(state, ev("impression", "e2", creative_id="A"))
    assert rec.params["to"] == "A" and rec.params["from"] == "B"
    assert rec.evidence["p_best"]["A"] > 0.85
    ctr = rec.evidence["click_through"]  # A's after this impression too: 32 / 401, discounted
    assert abs(ctr["A"] - 0.08) < 1e-3 and ctr["B"] == 0.01


def test_shift_budget_survives_more_clicks_than_impressions() -> None:
    """A producer that reports clicks without their impressions: the click-through stops at 1,
    and the split is still computed (a Beta with a negative parameter would raise)."""
    state = bandit_state(300)
    observe(state.memory, ev("click", creative_id="B", count=5000))
    [rec] = decide(state, ev("impression", creative_id="A"))
    assert rec.evidence["click_through"]["B"] == 1.0
    assert abs(sum(rec.evidence["p_best"].values()) - 1) < 1e-9


def test_shift_budget_needs_evidence_and_respects_its_cooldown() -> None:
    assert decide(bandit_state(100), ev("impression", creative_id="A")) == []
    state = bandit_state(300)
    assert decide(state, ev("impression", "e1", creative_id="A"))
    state.creatives["A"].impressions = 400
    assert decide(state, ev("impression", "e2", T0_MS + 10 * 60_000, creative_id="A")) == []


def clicks_on(state: CampaignState, ctr_by_impression: list[float]) -> list[Recommendation]:
    """Impressions of creative A with a click after each at the given rate (deterministic)."""
    rng = random.Random(3)
    recs: list[Recommendation] = []
    for i, ctr in enumerate(ctr_by_impression):
        ts = T0_MS + i * 30_000
        recs += decide(state, ev("impression", f"i{i}", ts, creative_id="A"))
        if rng.random() < ctr:
            recs += decide(state, ev("click", f"c{i}", ts + 500, creative_id="A"))
    return [r for r in recs if r.action == "pause_creative"]


def test_pause_creative_on_a_sustained_ctr_drop() -> None:
    [rec] = clicks_on(CampaignState("c"), [0.08] * 3000 + [0.04] * 2000)
    assert rec.target == "A" and rec.event_time > T0_MS + 3000 * 30_000
    assert 0.06 < rec.evidence["reference_ctr"] < 0.09  # its own click-through before the run
    assert rec.evidence["recent_clicks"] / rec.evidence["recent_impressions"] < 0.06
    assert 0.5 < rec.confidence < 1.0  # grows with the statistic, never saturates


def test_the_fatigue_statistic_starts_over_while_a_pause_cools_down() -> None:
    state = CampaignState("c")
    state.memory["cooldown"] = {"pause_creative|A": T0_MS + 10**12}  # paused not long ago
    assert clicks_on(state, [0.08] * 3000 + [0.04] * 2000) == []
    assert state.memory["fatigue"]["A"].statistic < 6.0  # held back, not piling up for later


def test_the_budget_split_forgets_a_creative_it_recommends_pausing() -> None:
    """After pause_creative, shift_budget judges the creative by its traffic since the pause
    only; a pause held back by the cooldown leaves what it knows alone."""
    state = CampaignState("c")
    [rec] = clicks_on(state, [0.08] * 3000 + [0.04] * 2000)
    since_pause = 5000 - (rec.event_time - T0_MS) // 30_000
    assert state.memory["arms"]["A"].impressions < since_pause
    held = CampaignState("c")
    held.memory["cooldown"] = {"pause_creative|A": T0_MS + 10**12}
    assert clicks_on(held, [0.08] * 3000 + [0.04] * 2000) == []
    assert held.memory["arms"]["A"].impressions > 3000  # discounted, but all 5,000 of them


def test_no_pause_for_a_healthy_creative_with_noisy_clicks() -> None:
    assert clicks_on(CampaignState("c"), [0.04] * 20_000) == []


def pacing(recent: Pacing, conversions: int) -> CampaignState:
    state = CampaignState("c", spend=1000.0)
    state.creatives = {"A": CreativeStats(1000, 100, conversions, 1000.0, T0_MS)}
    state.memory["recent"] = recent
    return state


def test_budget_up_when_recent_cost_per_conversion_is_low_and_down_when_high() -> None:
    spend = ev("spend", creative_id="A", amount=10, currency="USD")
    [up] = decide(pacing(Pacing(100.0, 10.0, 18), 20), spend)
    assert up.action == "increase_budget" and up.params["change"] == 0.2
    [down] = decide(pacing(Pacing(2000.0, 2.0, 19), 20), spend)
    assert down.action == "decrease_budget" and down.params["change"] == -0.2
    assert decide(pacing(Pacing(100.0, 10.0, 3), 5), spend) == []  # too few conversions


def posted(engagements: int) -> CampaignState:
    state = CampaignState("c")
    state.memory["post_outcomes"] = [2, 3, 4]  # the campaign's own median: 3
    state.pending_posts["p"] = PendingPost(PostTraits("x", T0_MS, 10, [], None), 2.0, T0_MS,
                                           engagements)
    return state


def test_boost_post_when_early_engagement_beats_the_prediction() -> None:
    [rec] = decide(posted(12), ev("reaction", ts=T0_MS + HOUR_MS, post_id="p"))
    assert rec.action == "boost_post" and rec.target == "p"
    assert rec.evidence["baseline"] == "campaign_median" and rec.evidence["expected"] == 3
    assert "4.0x the 3" in rec.explanation  # the real ratio, not a fixed word
    no_history = posted(12)
    del no_history.memory["post_outcomes"]  # nothing to compare with: no advice
    assert decide(no_history, ev("reaction", ts=T0_MS + HOUR_MS, post_id="p")) == []
    assert decide(posted(5), ev("reaction", ts=T0_MS + HOUR_MS, post_id="p")) == []
    assert decide(posted(12), ev("reaction", ts=T0_MS + 8 * HOUR_MS, post_id="p")) == []


def test_sentiment_alert_on_a_negative_surge_once_per_cooldown() -> None:
    state = CampaignState("c")
    state.memory["negative"] = NegativeShare(0.1, 0.1, 100)
    found = []
    for i in range(10):
        found += decide(state, ev("comment", f"n{i}", post_id="p", text="awful"), "negative")
    alerts = [r for r in found if r.action == "sentiment_alert"]
    assert len(alerts) == 1 and alerts[0].params["severity"] in ("medium", "high")
    quiet = CampaignState("c")
    quiet.memory["negative"] = NegativeShare(0.1, 0.1, 5)  # too few texts seen to call it a surge
    for i in range(10):
        assert "sentiment_alert" not in actions(
            decide(quiet, ev("comment", f"q{i}", post_id="p", text="awful"), "negative"))


def test_a_negative_first_comment_does_not_hide_a_later_surge() -> None:
    state = CampaignState("c")
    moods = ["negative"] + ["positive"] * 40 + ["negative"] * 15
    found = []
    for i, mood in enumerate(moods):
        found += decide(state, ev("comment", f"m{i}", T0_MS + i, post_id="p", text="hm"), mood)
    assert "sentiment_alert" in actions(found)


def test_negative_comments_are_batched_for_a_reply_once() -> None:
    state = CampaignState("c", negative_comments=[f"n{i}" for i in range(5)])
    [rec] = decide(state, ev("comment", "n4", post_id="p", text="bad"), "neutral")
    assert rec.action == "respond_to_comments"
    assert rec.params["comment_ids"] == [f"n{i}" for i in range(5)]
    assert state.negative_comments == []  # handed over
    assert decide(state, ev("comment", "x", post_id="p", text="ok"), "neutral") == []


def trained_posts() -> Models:
    models = Models()
    for i in range(400):  # posts at 20:00 and about cats engage more, independently
        hour, topic = (i % 24), ("cats" if i % 3 == 0 else "taxes")
        x = post_features(["x", DAY + hour * HOUR_MS, 50, [topic], None])
        models.posts.learn_one(x, 1.0 + 30.0 * (hour == 20) + 10.0 * (topic == "cats"), 0.0)
    return models


def test_schedule_post_and_promote_topic_from_engagement_predictions() -> None:
    models = trained_posts()
    state = CampaignState("c")
    state.memory["posts_done"] = 3  # the model has learned from this campaign's posts too
    state.memory["topics"] = ["cats", "taxes"]
    state.pending_posts["p"] = PendingPost(PostTraits("x", DAY + 8 * HOUR_MS, 50, ["news"], None),
                                           1.0, DAY + 8 * HOUR_MS, 0)
    recs = decide(state, ev("post", ts=DAY + 8 * HOUR_MS, post_id="p", text="hi",
                            topics=["news"], segment="18-24"), models=models)
    by_action = {r.action: r for r in recs}
    assert by_action["schedule_post"].params["hours_utc"][0] == 20
    assert by_action["promote_topic"].params["topic"] == "cats"
    assert by_action["promote_topic"].params["segment"] == "18-24"


def test_a_campaigns_own_topic_results_outweigh_the_global_ranking() -> None:
    models = trained_posts()  # across campaigns, "cats" beats "taxes"
    state = CampaignState("c")
    policy = Policy()
    for i in range(6):  # but this campaign's posts about taxes do far better than predicted
        x = post_features(["x", DAY + 20 * HOUR_MS, 50, ["taxes"], None])
        policy.post_outcome(state, ["taxes"], x, 400 + i, models)
        x = post_features(["x", DAY + 20 * HOUR_MS, 50, ["cats"], None])
        policy.post_outcome(state, ["cats"], x, 2, models)
    state.memory["topics"] = ["cats", "taxes", "news"]
    state.pending_posts["p"] = PendingPost(PostTraits("x", DAY + 20 * HOUR_MS, 50, ["news"], None),
                                           1.0, DAY + 20 * HOUR_MS, 0)
    recs = decide(state, ev("post", ts=DAY + 20 * HOUR_MS, post_id="p", text="hi",
                            topics=["news"]), models=models)
    [promote] = [r for r in recs if r.action == "promote_topic"]
    assert promote.params["topic"] == "taxes" and promote.params["segment"] == "all"


def test_no_content_advice_before_the_engagement_model_has_learned() -> None:
    state = CampaignState("c")
    state.pending_posts["p"] = PendingPost(PostTraits("x", T0_MS, 50, [], None), 1.0, T0_MS, 0)
    assert decide(state, ev("post", post_id="p", text="hi")) == []


def test_the_same_stream_gives_the_same_recommendation_ids() -> None:
    lines = [p.raw for p in mixed(20_000, seed=5)]
    first: list[bytes] = []
    second: list[bytes] = []
    replay(lines, emit=first.append)
    replay(lines, emit=second.append)
    ids = [orjson.loads(r)["recommendation_id"] for r in first]
    assert ids and ids == [orjson.loads(r)["recommendation_id"] for r in second]
    for raw in first:
        VALIDATOR.validate(orjson.loads(raw))


def defunded_state(impressions: int = 200, conversions: int = 0) -> CampaignState:
    """A pays (95% of the budget, 0.5% of impressions convert); B lost its share at T0 after
    ``impressions`` impressions and ``conversions`` conversions, and got none since."""
    state = CampaignState("c")
    state.creatives = {"A": CreativeStats(3000, 150, 15, 0.0, T0_MS),
                       "B": CreativeStats(impressions, 10, conversions, 0.0, T0_MS)}
    state.memory["arms"] = {"A": Arm(15.0, 2985.0),
                            "B": Arm(float(conversions), float(impressions - conversions))}
    state.memory["shares"] = {"A": 1.0, "B": 0.0}
    state.memory["defunded"] = {"B": Defunded(T0_MS, impressions)}
    return state


def test_a_defunded_creative_gets_a_bounded_retest_then_the_usual_split() -> None:
    from tests.unit.test_explanations import check

    state = defunded_state()
    assert decide(state, ev("impression", "early", T0_MS + 30 * 60_000, creative_id="A")) == []
    [rec] = decide(state, ev("impression", "e1", T0_MS + 2 * HOUR_MS, creative_id="A"))
    assert (rec.action, rec.reason, rec.target) == ("shift_budget", "retest_defunded_creative",
                                                    "B")
    assert rec.params["from"] == "A" and rec.params["shares"] == {"A": 0.85, "B": 0.15}
    assert rec.params["impressions"] == rec.evidence["retest_impressions"] == RETEST_IMPRESSIONS
    assert rec.evidence["defunded_hours"] == 2.0 and rec.evidence["impressions"] == 200
    assert 0.3 < rec.evidence["chance_as_good_as_leader"] == rec.confidence < 0.45
    check(orjson.loads(orjson.dumps(rec.to_dict())))
    # while B has its retest impressions, the usual split leaves its share alone
    state.creatives["A"].impressions = 3100
    assert decide(state, ev("impression", "e2", T0_MS + 3 * HOUR_MS, creative_id="A")) == []
    # B converts so little that it is surely worse: the retest ends before its impressions and
    # the usual split decides again, B's share goes back
    state.creatives["B"].impressions = 450
    state.memory["arms"]["B"] = Arm(0.0, 450.0)
    state.creatives["A"].impressions = 3200
    [back] = decide(state, ev("impression", "e3", T0_MS + 4 * HOUR_MS, creative_id="A"))
    assert (back.reason, back.params["from"], back.params["to"]) == ("bandit_best_creative",
                                                                     "B", "A")
    # and it is not retested again within its cooldown, even if its evidence looks unlucky
    state.creatives["B"].conversions = 3
    state.memory["arms"]["B"] = Arm(3.0, 447.0)
    state.creatives["A"].impressions = 3300
    recs = decide(state, ev("impression", "e4", T0_MS + 6 * HOUR_MS, creative_id="A"))
    assert all(r.reason != "retest_defunded_creative" for r in recs)


def test_no_retest_for_a_creative_whose_evidence_says_it_is_worse() -> None:
    state = defunded_state(impressions=1500, conversions=1)  # 7.5 expected at A's rate
    recs = decide(state, ev("impression", "e1", T0_MS + 2 * HOUR_MS, creative_id="A"))
    assert all(r.reason != "retest_defunded_creative" for r in recs)


def test_no_retest_for_a_creative_that_had_traffic_or_was_defunded_recently() -> None:
    state = defunded_state()
    state.creatives["B"].impressions = 500  # the split was not followed: it has its evidence
    state.memory["arms"]["B"] = Arm(0.0, 500.0)
    recs = decide(state, ev("impression", "e1", T0_MS + 2 * HOUR_MS, creative_id="A"))
    assert all(r.reason != "retest_defunded_creative" for r in recs)
    state = defunded_state()
    assert decide(state, ev("impression", "e1", T0_MS + 59 * 60_000, creative_id="A")) == []


def test_every_reason_code_has_its_metric_from_the_start() -> None:
    from prometheus_client import generate_latest

    import streams.metrics  # noqa: F401  (registers the metrics)
    from streams.policy import REASONS

    text = generate_latest().decode()
    for action, codes in REASONS.items():
        for reason in codes:
            assert (f'socialstream_recommendations_total{{action="{action}",reason="{reason}"}}'
                    in text)
