"""Organic content: which posts to boost (``boost_post``), when to post (``schedule_post``) and
what about (``promote_topic``).

The engagement model is global (it learns from every campaign's posts); a campaign's own audience
differs, so each campaign also remembers how its posts on each topic did against the model (its
lift) and topic advice uses both.
"""

from __future__ import annotations

import math
from typing import Any, Final

from streams.events import SocialEvent
from streams.models.engagement import HOUR_MS, POST_HORIZON_MS, post_features
from streams.policy.guardrails import Emitter
from streams.state import CampaignState
from streams.training import Models

MAX_TOPICS: Final = 20
LIFT_PRIOR: Final = 2  # posts' worth of "no different from the global model" in a topic's lift
BOOST_MIN_ENGAGEMENTS: Final = 10  # a post's engagements, before it may be boosted
MIN_MODEL_VERSION: Final = 20  # examples the engagement model learned before its advice counts
MIN_TOPICS: Final = 3  # topics a campaign posted about, before one is promoted over the others


def boost_post(state: CampaignState, event: SocialEvent, emit: Emitter) -> None:
    """On each engagement with a post still within its horizon: recommend boosting it once it
    has far more engagement than predicted."""
    post = state.pending_posts.get(event.post_id or "")
    if post is None:
        return
    _, predicted, ts_ms, engagements = post
    age_h = max((event.ts_ms - ts_ms) / HOUR_MS, 0.0)
    horizon_h = POST_HORIZON_MS // HOUR_MS
    if age_h <= horizon_h and engagements >= BOOST_MIN_ENGAGEMENTS \
            and engagements > 2 * max(predicted, 1.0):
        emit("boost_post", event.post_id or "",
             f"Post {event.post_id} has {engagements} engagements after {age_h:.1f} h, "
             f"twice the {predicted:.1f} predicted for its first {horizon_h} h: boost it.",
             min(1.0, engagements / (4 * max(predicted, 1.0))),
             params={"post_id": event.post_id},
             evidence={"engagements": engagements, "predicted": round(predicted, 2),
                       "age_hours": round(age_h, 2)})


def plan_posts(memory: dict[str, Any], state: CampaignState, event: SocialEvent,
               models: Models, emit: Emitter) -> None:
    """On each new post, once the engagement model has learned enough: a better hour to post
    like it, then the campaign's most promising topic."""
    post = state.pending_posts.get(event.post_id or "")
    if post is None or models.posts.version < MIN_MODEL_VERSION:
        return  # no predictions worth acting on yet
    traits = post[0]
    schedule_post(traits, models, emit)
    promote_topic(memory, traits, event.segment or "all", models, emit)


def schedule_post(traits: list[Any], models: Models, emit: Emitter) -> None:
    """Recommend the hours of the post's day (UTC) at which the model predicts the most
    engagement for a post like it, when that beats the hour it was posted at by 20%."""
    platform, ts_ms, length, topics, sentiment = traits
    by_hour = []
    for hour in range(24):
        shifted = ts_ms - ts_ms % (24 * HOUR_MS) + hour * HOUR_MS
        x = post_features([platform, shifted, length, topics, sentiment])
        by_hour.append(models.posts.predict_one(x))
    order = sorted(range(24), key=lambda h: -by_hour[h])
    now_hour = (ts_ms // HOUR_MS) % 24
    if by_hour[order[0]] > 1.2 * by_hour[now_hour]:
        emit("schedule_post", platform,
             f"On {platform}, posts like this one are predicted "
             f"{by_hour[order[0]] / max(by_hour[now_hour], 1e-9) - 1:.0%} more engagement "
             f"at {order[0]}:00 UTC than at {now_hour}:00.",
             min(1.0, 0.5 + (by_hour[order[0]] - by_hour[now_hour]) / 10),
             params={"hours_utc": order[:3], "platform": platform},
             evidence={"predicted_by_hour": [round(v, 2) for v in by_hour]})


def promote_topic(memory: dict[str, Any], traits: list[Any], segment: str, models: Models,
                  emit: Emitter) -> None:
    """Remember the post's topics (the last MAX_TOPICS) and recommend the one predicted to
    engage most, when it beats the campaign's topics on average by 20%.

    A topic's score is the global prediction for a post like this one on that topic, times the
    campaign's own lift on it (shrunk towards none while few of its posts are known)."""
    platform, ts_ms, length, topics, sentiment = traits
    seen = memory.setdefault("topics", [])
    for topic in topics:
        if topic not in seen:
            seen.append(topic)
    del seen[:-MAX_TOPICS]
    if len(seen) < MIN_TOPICS:
        return
    lifts = memory.get("topic_lift", {})
    score = {}
    for t in seen:
        residuals, posts = lifts.get(t, (0.0, 0))
        x = post_features([platform, ts_ms, length, [t], sentiment])
        score[t] = models.posts.predict_one(x) * math.exp(residuals / (posts + LIFT_PRIOR))
    best = max(seen, key=lambda t: score[t])
    mean = sum(score.values()) / len(score)
    if score[best] > 1.2 * mean:
        emit("promote_topic", f"{segment}:{best}",
             f"Posts about {best} are predicted {score[best] / max(mean, 1e-9) - 1:.0%} more "
             f"engagement than this campaign's other topics for segment {segment}.",
             min(1.0, 0.5 + (score[best] - mean) / 10),
             params={"topic": best, "segment": segment,
                     "ranking": sorted(seen, key=lambda t: -score[t])[:5]},
             evidence={"predicted": {t: round(v, 2) for t, v in sorted(score.items())}})


def learn_topic_lift(memory: dict[str, Any], topics: list[str], x: dict[str, float],
                     engagements: int, models: Models) -> None:
    """A post's engagement is known: remember how its topics did for this campaign against the
    global model, which only knows how topics do across all campaigns."""
    residual = math.log1p(engagements) - math.log1p(models.posts.predict_one(x))
    lifts = memory.setdefault("topic_lift", {})  # topic -> [residual sum, posts]
    for topic in topics:
        lift = lifts.pop(topic, [0.0, 0])
        lift[0] += residual
        lift[1] += 1
        lifts[topic] = lift  # most recently seen last, so the oldest go first
    while len(lifts) > MAX_TOPICS:
        del lifts[next(iter(lifts))]
