"""Organic content: which posts to boost (``boost_post``), when to post (``schedule_post``) and
what about (``promote_topic``).

The engagement model is global (it learns from every campaign's posts); a campaign's own audience
differs, so each campaign also remembers how its posts on each topic did against the model (its
lift) and topic advice uses both.
"""

from __future__ import annotations

import math
import statistics
from typing import Final

from streams.events import SocialEvent
from streams.models.engagement import HOUR_MS, POST_HORIZON_MS, post_features
from streams.policy.guardrails import Emitter
from streams.records import PolicyMemory, PostTraits, TopicLift
from streams.state import CampaignState
from streams.training import Models

MAX_TOPICS: Final = 20
LIFT_PRIOR: Final = 2  # posts' worth of "no different from the global model" in a topic's lift
BOOST_MIN_ENGAGEMENTS: Final = 10  # a post's engagements, before it may be boosted
MIN_MODEL_VERSION: Final = 20  # examples the engagement model learned before its advice counts
MIN_TOPICS: Final = 3  # topics a campaign posted about, before one is promoted over the others
MIN_CAMPAIGN_POSTS: Final = 3  # the campaign's finished posts, before its advice
BOOST_RATIO: Final = 2.0  # engagement over the expected, before a post is boosted
MAX_OUTCOMES: Final = 15  # the campaign's last finished posts kept for its median


def boost_post(memory: PolicyMemory, state: CampaignState, event: SocialEvent,
               models: Models, emit: Emitter) -> None:
    """On each engagement with a post still within its horizon: recommend boosting it once it
    has BOOST_RATIO times the engagement expected of it over its whole horizon.

    Expected: the engagement model's prediction for it once the model has learned enough (from
    MIN_MODEL_VERSION posts, MIN_CAMPAIGN_POSTS of them this campaign's), else the median of this
    campaign's own finished posts; with neither there is nothing to compare with, so no advice."""
    post = state.pending_posts.get(event.post_id or "")
    if post is None or post.engagements < BOOST_MIN_ENGAGEMENTS:
        return
    engagements = post.engagements
    age_h = max((event.ts_ms - post.ts_ms) / HOUR_MS, 0.0)
    horizon_h = POST_HORIZON_MS // HOUR_MS
    outcomes = memory.get("post_outcomes", [])
    if age_h > horizon_h or len(outcomes) < MIN_CAMPAIGN_POSTS:
        return
    if model_ready(memory, models):
        baseline, usual = "model", models.posts.predict_one(post_features(post.traits.as_list()))
        said = "predicted by the engagement model"
    else:
        baseline, usual = "campaign_median", statistics.median(outcomes)
        said = f"this campaign's median over its last {len(outcomes)} posts"
    expected = round(max(usual, 1.0), 2)
    ratio = round(engagements / expected, 1)
    if ratio < BOOST_RATIO:
        return
    evidence = {"engagements": engagements, "expected": expected, "baseline": baseline,
                "age_hours": round(age_h, 2), "horizon_hours": horizon_h,
                "campaign_posts": len(outcomes)}
    emit("boost_post", event.post_id or "",
         f"Post {event.post_id} has {engagements} engagements after {evidence['age_hours']} h, "
         f"{ratio}x the {expected} expected over its first {horizon_h} h ({said}): boost it.",
         min(1.0, ratio / (2 * BOOST_RATIO)), params={"post_id": event.post_id},
         evidence=evidence)


def model_ready(memory: PolicyMemory, models: Models) -> bool:
    """The engagement model has learned enough for this campaign's advice: from MIN_MODEL_VERSION
    posts in all, MIN_CAMPAIGN_POSTS of them this campaign's."""
    return (models.posts.version >= MIN_MODEL_VERSION
            and memory.get("posts_done", 0) >= MIN_CAMPAIGN_POSTS)


def plan_posts(memory: PolicyMemory, state: CampaignState, event: SocialEvent,
               models: Models, emit: Emitter) -> None:
    """On each new post, once the engagement model has learned enough: a better hour to post
    like it, then the campaign's most promising topic."""
    post = state.pending_posts.get(event.post_id or "")
    if post is None or not model_ready(memory, models):
        return  # no predictions worth acting on yet
    traits = post.traits
    schedule_post(traits, models, emit)
    promote_topic(memory, traits, event.segment or "all", models, emit)


def schedule_post(traits: PostTraits, models: Models, emit: Emitter) -> None:
    """Recommend the hours of the post's day (UTC) at which the model predicts the most
    engagement for a post like it, when that beats the hour it was posted at by 20%."""
    platform, ts_ms, length = traits.platform, traits.ts_ms, traits.text_length
    topics, sentiment = traits.topics, traits.sentiment
    by_hour = []
    for hour in range(24):
        shifted = ts_ms - ts_ms % (24 * HOUR_MS) + hour * HOUR_MS
        x = post_features([platform, shifted, length, topics, sentiment])
        by_hour.append(models.posts.predict_one(x))
    predicted = [round(v, 2) for v in by_hour]  # the evidence, and what the sentence says
    order = sorted(range(24), key=lambda h: -predicted[h])
    now_hour = (ts_ms // HOUR_MS) % 24
    best, now = predicted[order[0]], predicted[now_hour]
    if now > 0 and best > 1.2 * now:
        emit("schedule_post", platform,
             f"On {platform}, posts like this one are predicted {best / now - 1:.0%} more "
             f"engagement at {order[0]}:00 UTC ({best}) than at {now_hour}:00 ({now}).",
             min(1.0, 0.5 + (best - now) / 10),
             params={"hours_utc": order[:3], "platform": platform},
             evidence={"predicted_by_hour": predicted, "posted_hour_utc": now_hour})


def promote_topic(memory: PolicyMemory, traits: PostTraits, segment: str, models: Models,
                  emit: Emitter) -> None:
    """Remember the post's topics (the last MAX_TOPICS) and recommend the one predicted to
    engage most, when it beats the campaign's topics on average by 20%.

    A topic's score is the global prediction for a post like this one on that topic, times the
    campaign's own lift on it (shrunk towards none while few of its posts are known)."""
    seen = memory.setdefault("topics", [])
    for topic in traits.topics:
        if topic not in seen:
            seen.append(topic)
    del seen[:-MAX_TOPICS]
    if len(seen) < MIN_TOPICS:
        return
    lifts = memory.get("topic_lift", {})
    score = {}
    for t in seen:
        lift = lifts.get(t)
        residuals, posts = (0.0, 0) if lift is None else (lift.residuals, lift.posts)
        x = post_features([traits.platform, traits.ts_ms, traits.text_length, [t],
                           traits.sentiment])
        score[t] = models.posts.predict_one(x) * math.exp(residuals / (posts + LIFT_PRIOR))
    predicted = {t: round(v, 2) for t, v in sorted(score.items())}
    best = max(seen, key=lambda t: predicted[t])
    mean = round(sum(predicted.values()) / len(predicted), 2)
    if mean > 0 and predicted[best] > 1.2 * mean:
        emit("promote_topic", f"{segment}:{best}",
             f"Posts about {best} are predicted {predicted[best] / mean - 1:.0%} more engagement "
             f"({predicted[best]}) than the average ({mean}) of this campaign's "
             f"{len(predicted)} topics for segment {segment}.",
             min(1.0, 0.5 + (predicted[best] - mean) / 10),
             params={"topic": best, "segment": segment,
                     "ranking": sorted(seen, key=lambda t: -predicted[t])[:5]},
             evidence={"predicted": predicted, "average": mean})


def learn_topic_lift(memory: PolicyMemory, topics: list[str], x: dict[str, float],
                     engagements: int, models: Models) -> None:
    """A post's engagement is known: remember it (the campaign's own baseline for boost_post) and
    how its topics did for this campaign against the global model, which only knows how topics
    do across all campaigns."""
    outcomes = memory.setdefault("post_outcomes", [])
    outcomes.append(engagements)
    del outcomes[:-MAX_OUTCOMES]
    memory["posts_done"] = memory.get("posts_done", 0) + 1
    residual = math.log1p(engagements) - math.log1p(models.posts.predict_one(x))
    lifts = memory.setdefault("topic_lift", {})
    for topic in topics:
        lift = lifts.pop(topic, None)
        if lift is None:
            lift = TopicLift(0.0, 0)
        lift.residuals += residual
        lift.posts += 1
        lifts[topic] = lift  # most recently seen last, so the oldest go first
    while len(lifts) > MAX_TOPICS:
        del lifts[next(iter(lifts))]
