"""Campaign decisions: from a campaign's state and the models' outputs, the recommendations worth
sending, each through the same guardrails (streams/policy/guardrails.py).

``Policy.decide`` is pure given its inputs and called once per applied event, after the pipeline
updated the state; it only looks at what that event could have changed, so it stays cheap.
Everything it remembers (bandit posteriors, fatigue statistics, sentiment averages, cooldowns)
lives in ``CampaignState.policy``: durable with the campaign, and deterministic for a given input
stream and model lineage, so the same stream yields the same recommendation ids.
"""

from __future__ import annotations

import math
import random
from typing import Any, Final

from streams.events import SocialEvent
from streams.models.engagement import HOUR_MS, POST_HORIZON_MS, post_features
from streams.policy.guardrails import (
    ALERT_MIN_TEXTS,
    FATIGUE_MIN_CLICKS,
    FATIGUE_MIN_IMPRESSIONS,
    MAX_SHIFT,
    MIN_CONVERSIONS,
    MIN_IMPRESSIONS,
    REPLY_BATCH,
    Emitter,
)
from streams.policy.recommendation import Recommendation
from streams.state import CampaignState
from streams.training import Models

DISCOUNT: Final = 0.9999  # per impression of a creative: its old evidence fades as it changes
THOMPSON_DRAWS: Final = 200
PRIOR_IMPRESSIONS: Final = 1000.0  # impressions' worth of the campaign's rate in each prior
SHARPNESS: Final = 3.0  # budget shares proportional to P(best) to this power
FATIGUE_DROP: Final = 0.4  # the drop in a creative's click-through that pause_creative is tuned to
FATIGUE_THRESHOLD: Final = 5.0  # CUSUM log-likelihood ratio that confirms it
FATIGUE_DISCOUNT: Final = 0.9999  # per impression: the reference follows slow changes
ALERT_RISE: Final = 0.25  # fast negative share above the slow baseline
ALERT_LEVEL: Final = 0.45  # and the fast negative share itself at least this
MAX_TOPICS: Final = 20
LIFT_PRIOR: Final = 2  # posts' worth of "no different from the global model" in a topic's lift


class Policy:
    def __init__(self, dry_run: bool = False) -> None:
        self.dry_run = dry_run

    def decide(self, state: CampaignState, event: SocialEvent, models: Models,
               predicted: str | None) -> list[Recommendation]:
        """Recommendations this event makes due (most events make none)."""
        memory = state.policy
        found: list[Recommendation] = []
        emit = Emitter(state, event, models, found, self.dry_run)
        kind = event.type
        if kind in ("impression", "click", "conversion"):
            self._bandit(memory, event)
            if kind != "conversion":
                self._fatigue(memory, event, emit)
            stats = state.creatives.get(event.creative_id or "")
            if kind == "impression" and stats is not None and stats[0] % 100 == 0:
                self._shift(memory, state, event, emit)  # once per 100 impressions of a creative
        elif kind == "spend":
            self._pacing(memory, state, event, emit)
        elif kind == "comment" and predicted is not None:
            self._sentiment(memory, state, predicted, emit)
        elif kind == "post":
            self._content(memory, state, event, models, emit)
        if kind in ("reaction", "share", "comment"):
            self._boost(state, event, emit)
        return found

    # -- budget across creatives: discounted Beta posteriors, Thompson sampling ----------------
    def _bandit(self, memory: dict[str, Any], event: SocialEvent) -> None:
        # creative -> [conversions, impressions without one], discounted per impression of that
        # creative: its old evidence fades as it gets new (a creative without traffic keeps what
        # is known of it; fading that too made it look promising again, measured 0.82 -> 0.85 of
        # the oracle in bench.decisions)
        arms = memory.setdefault("arms", {})
        cid = event.creative_id or ""
        if event.type == "impression":
            arm = arms.setdefault(cid, [0.0, 0.0])
            arm[0] *= DISCOUNT
            arm[1] = arm[1] * DISCOUNT + 1.0
        elif event.type == "conversion" and cid in arms and arms[cid][1] >= 1.0:
            arms[cid][0] += 1.0  # an impression that converted: a success, not a failure
            arms[cid][1] -= 1.0

    # -- fatigue: Bernoulli CUSUM on each creative's clicks ---------------------------------------
    def _fatigue(self, memory: dict[str, Any], event: SocialEvent, emit: Emitter) -> None:
        """Page's CUSUM for a drop of FATIGUE_DROP in click-through against the creative's own
        reference rate: the quickest detection for a given false-alarm rate (with clicks in the
        single digits per 100 impressions, comparing windows paused healthy creatives daily).
        The reference is the creative's own click-through, slowly discounted: it follows a drop
        too, but slower than the statistic confirms it (learning only from stretches without
        suspicion biased it upwards: those end on a click)."""
        cid = event.creative_id or ""
        # creative -> [reference clicks, reference impressions, statistic, run clicks, run imps]
        f = memory.setdefault("fatigue", {}).setdefault(cid, [0.0, 0.0, 0.0, 0, 0])
        click = event.type == "click"
        statistic = f[2]
        p0 = min(f[0] / f[1], 0.5) if f[1] else 0.0
        if f[1] >= FATIGUE_MIN_IMPRESSIONS and f[0] >= FATIGUE_MIN_CLICKS:  # reference is ready
            p1 = p0 * (1 - FATIGUE_DROP)
            statistic += math.log(p1 / p0) - math.log((1 - p1) / (1 - p0)) if click \
                else math.log((1 - p1) / (1 - p0))
            statistic = max(statistic, 0.0)
        if click:
            f[0] += 1.0
        else:
            f[0] *= FATIGUE_DISCOUNT
            f[1] = f[1] * FATIGUE_DISCOUNT + 1.0
        # the run: what the statistic rests on since it was last zero
        f[3], f[4] = (0, 0) if statistic == 0.0 else (f[3] + click, f[4] + (not click))
        f[2] = statistic
        if statistic < FATIGUE_THRESHOLD:
            return
        recent = f[3] / max(f[4], 1)
        drop = 1 - recent / p0
        rec = emit("pause_creative", cid,
                   f"Click-through of {cid} fell {drop:.0%} below its usual {p0:.2%} over its last "
                   f"{f[4]} impressions: pause it or refresh it.",
                   min(1.0, 0.5 + 0.5 * drop / FATIGUE_DROP),
                   params={"creative_id": cid},
                   evidence={"reference_ctr": round(p0, 5), "recent_ctr": round(recent, 5),
                             "recent_impressions": f[4], "cusum": round(statistic, 3)})
        if rec is not None:
            f[2], f[3], f[4] = 0.0, 0, 0

    def _shift(self, memory: dict[str, Any], state: CampaignState, event: SocialEvent,
               emit: Emitter) -> None:
        known = memory.get("arms", {})
        arms = {c: a for c, a in known.items()
                if state.creatives.get(c, [0])[0] >= MIN_IMPRESSIONS}
        if len(arms) < 2:
            return
        rng = random.Random(f"{state.campaign_id}|{event.event_id}")  # deterministic draws
        # Prior: the campaign's own conversion rate, worth PRIOR_IMPRESSIONS impressions. With a
        # uniform Beta(1, 1) prior (mean 0.5 conversions per impression) a creative whose evidence
        # had faded looked far better than any real one and kept drawing budget.
        conversions = sum(a[0] for a in known.values())
        pooled = (conversions + 1) / (conversions + sum(a[1] for a in known.values()) + 2)
        a0, b0 = PRIOR_IMPRESSIONS * pooled, PRIOR_IMPRESSIONS * (1 - pooled)
        wins = dict.fromkeys(arms, 0)
        for _ in range(THOMPSON_DRAWS):
            best = max(arms, key=lambda c: rng.betavariate(a0 + arms[c][0], b0 + arms[c][1]))
            wins[best] += 1
        p_best = {c: w / THOMPSON_DRAWS for c, w in wins.items()}
        # Shares proportional to P(best) cubed: probability matching explores too much for a
        # budget (bench.decisions: 0.84 of the oracle at the first power, 0.88 squared; cubed
        # after the campaign prior and per-creative discounting).
        sharp = {c: p ** SHARPNESS for c, p in p_best.items()}
        # Shares cover every creative of the campaign: the ones short of evidence keep theirs
        # (a newcomer starts at an even share), and only the others' share is redistributed.
        # Leaving them out of the shares defunded them for good, the best one too at times.
        stored = memory.get("shares") or {}
        current = {c: stored.get(c, 1 / len(known)) for c in known}
        total = sum(current.values())
        current = {c: v / total for c, v in current.items()}
        pool = sum(current[c] for c in arms)
        target = {c: pool * v / sum(sharp.values()) for c, v in sharp.items()}
        # From the creative furthest above its target share to the one furthest below it: a
        # creative may get budget back without being the likeliest best (moving only to the
        # likeliest best left a truly better creative at no budget for good).
        to = max(target, key=lambda c: target[c] - current[c])
        source = min(arms, key=lambda c: target[c] - current[c])
        move = min(MAX_SHIFT, current[source], target[to] - current[to])
        # Never toward a creative less likely to be the best than the one that pays: with noisy
        # P(best) such moves flip budget back and forth (bench.decisions: worst campaign 0.59 ->
        # 0.74 of the oracle, median 0.85 -> 0.88).
        if move < 0.05 or to == source or p_best[to] <= p_best[source]:
            return
        shares = dict(current)
        shares[source] -= move
        shares[to] += move
        rec = emit("shift_budget", to,
                   f"Chance of being the best of {len(arms)} creatives: {to} {p_best[to]:.0%}, "
                   f"{source} {p_best[source]:.0%}: move {move:.0%} of the budget from {source} "
                   f"to {to}.",
                   p_best[to],
                   params={"from": source, "to": to, "share": round(move, 4),
                           "shares": {c: round(s, 4) for c, s in sorted(shares.items())}},
                   evidence={"p_best": {c: round(p, 4) for c, p in sorted(p_best.items())},
                             "conversion_rate": {
                                 c: round(a[0] / max(a[0] + a[1], 1e-9), 5)
                                 for c, a in sorted(arms.items())}})
        if rec is not None:
            memory["shares"] = shares

    # -- pacing: cost per result against the campaign's own history --------------------------
    def _pacing(self, memory: dict[str, Any], state: CampaignState, event: SocialEvent,
                emit: Emitter) -> None:
        # spend and conversions (both exponentially weighted), conversions at the last spend
        recent = memory.setdefault("recent", [0.0, 0.0, 0])
        conversions = sum(int(s[2]) for s in state.creatives.values())
        recent_spend = recent[0] * 0.9 + (event.amount or 0.0)
        recent_conv = conversions - recent[2]
        recent[0], recent[1], recent[2] = recent_spend, recent[1] * 0.9 + recent_conv, conversions
        if conversions < MIN_CONVERSIONS or state.spend <= 0 or recent[1] < 1:
            return
        cpa_all = state.spend / conversions
        cpa_recent = recent[0] / recent[1]
        ratio = cpa_recent / cpa_all
        evidence = {"cpa_recent": round(cpa_recent, 2), "cpa_campaign": round(cpa_all, 2),
                    "conversions": conversions, "spend": round(state.spend, 2)}
        if ratio < 0.7:
            emit("increase_budget", state.campaign_id,
                 f"Recent cost per conversion is {1 - ratio:.0%} below the campaign's average: "
                 "raise the budget while it lasts.", min(1.0, 1.3 - ratio),
                 params={"change": round(min(MAX_SHIFT, 1 - ratio), 4)}, evidence=evidence)
        elif ratio > 1.4:
            emit("decrease_budget", state.campaign_id,
                 f"Recent cost per conversion is {ratio - 1:.0%} above the campaign's average: "
                 "lower the budget until it recovers.", min(1.0, ratio / 2),
                 params={"change": round(-min(MAX_SHIFT, ratio - 1), 4)}, evidence=evidence)

    # -- community: negative surges and comments that need a reply ----------------------------
    def _sentiment(self, memory: dict[str, Any], state: CampaignState, predicted: str,
                   emit: Emitter) -> None:
        avg = memory.setdefault("negative", [0.0, 0.0, 0])  # fast, slow, texts seen
        negative = 1.0 if predicted == "negative" else 0.0
        avg[2] += 1
        # Plain means until there are enough texts for the exponential ones: otherwise the first
        # comment sets the baseline for hundreds (a negative first comment hid a crisis).
        avg[0] += max(0.1, 1 / avg[2]) * (negative - avg[0])
        avg[1] += max(0.01, 1 / avg[2]) * (negative - avg[1])
        rise = avg[0] - avg[1]
        if avg[2] >= ALERT_MIN_TEXTS and rise > ALERT_RISE and avg[0] > ALERT_LEVEL:
            severity = "high" if avg[0] > 0.6 else "medium"
            emit("sentiment_alert", state.campaign_id,
                 f"Negative comments rose to {avg[0]:.0%} of recent ones against a usual "
                 f"{avg[1]:.0%}: check what people react to.", min(1.0, rise / 0.5),
                 params={"severity": severity},
                 evidence={"negative_share_recent": round(avg[0], 4),
                           "negative_share_baseline": round(avg[1], 4), "texts": avg[2]})
        waiting = state.negative_comments
        if len(waiting) >= REPLY_BATCH:
            rec = emit("respond_to_comments", state.campaign_id,
                       f"{len(waiting)} negative comments are waiting for a reply.",
                       0.8, params={"comment_ids": list(waiting)},
                       evidence={"count": len(waiting)}, trigger=waiting[-1])
            if rec is not None:
                waiting.clear()  # handed over: the next batch starts empty

    def _boost(self, state: CampaignState, event: SocialEvent, emit: Emitter) -> None:
        post = state.pending_posts.get(event.post_id or "")
        if post is None:
            return
        _, predicted, ts_ms, engagements = post
        age_h = max((event.ts_ms - ts_ms) / HOUR_MS, 0.0)
        horizon_h = POST_HORIZON_MS // HOUR_MS
        if age_h <= horizon_h and engagements >= 10 and engagements > 2 * max(predicted, 1.0):
            emit("boost_post", event.post_id or "",
                 f"Post {event.post_id} has {engagements} engagements after {age_h:.1f} h, "
                 f"twice the {predicted:.1f} predicted for its first {horizon_h} h: boost it.",
                 min(1.0, engagements / (4 * max(predicted, 1.0))),
                 params={"post_id": event.post_id},
                 evidence={"engagements": engagements, "predicted": round(predicted, 2),
                           "age_hours": round(age_h, 2)})

    # -- content: when to post and what about -------------------------------------------------
    def post_outcome(self, state: CampaignState, topics: list[str], x: dict[str, float],
                     engagements: int, models: Models) -> None:
        """A post's engagement is known: remember how its topics did for this campaign against the
        global model, which only knows how topics do across all campaigns."""
        residual = math.log1p(engagements) - math.log1p(models.posts.predict_one(x))
        lifts = state.policy.setdefault("topic_lift", {})  # topic -> [residual sum, posts]
        for topic in topics:
            lift = lifts.pop(topic, [0.0, 0])
            lift[0] += residual
            lift[1] += 1
            lifts[topic] = lift  # most recently seen last, so the oldest go first
        while len(lifts) > MAX_TOPICS:
            del lifts[next(iter(lifts))]

    def _content(self, memory: dict[str, Any], state: CampaignState, event: SocialEvent,
                 models: Models, emit: Emitter) -> None:
        post = state.pending_posts.get(event.post_id or "")
        if post is None or models.posts.version < 20:  # no predictions worth acting on yet
            return
        traits = post[0]
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
        seen = memory.setdefault("topics", [])
        for topic in topics:
            if topic not in seen:
                seen.append(topic)
        del seen[:-MAX_TOPICS]
        if len(seen) < 3:
            return
        # The global prediction for a post on the topic, times the campaign's own lift on it
        # (shrunk towards none while few of its posts are known).
        lifts = memory.get("topic_lift", {})
        score = {}
        for t in seen:
            residuals, posts = lifts.get(t, (0.0, 0))
            x = post_features([platform, ts_ms, length, [t], sentiment])
            score[t] = models.posts.predict_one(x) * math.exp(residuals / (posts + LIFT_PRIOR))
        best = max(seen, key=lambda t: score[t])
        mean = sum(score.values()) / len(score)
        segment = event.segment or "all"
        if score[best] > 1.2 * mean:
            emit("promote_topic", f"{segment}:{best}",
                 f"Posts about {best} are predicted {score[best] / max(mean, 1e-9) - 1:.0%} more "
                 f"engagement than this campaign's other topics for segment {segment}.",
                 min(1.0, 0.5 + (score[best] - mean) / 10),
                 params={"topic": best, "segment": segment,
                         "ranking": sorted(seen, key=lambda t: -score[t])[:5]},
                 evidence={"predicted": {t: round(v, 2) for t, v in sorted(score.items())}})
