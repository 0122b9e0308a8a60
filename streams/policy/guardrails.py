"""What every recommendation passes before it is sent, whichever rule found it.

A rule decides that an action looks worth taking; the guardrails decide whether it may be said
now: each rule waits for its minimum evidence (the thresholds below, in one place so they can be
read and reviewed together), an action is not repeated for the same (campaign, action, target)
within its cooldown in event time, a budget recommendation moves at most ``MAX_SHIFT`` of the
budget at once, every recommendation says when it stops being valid, and a dry-run policy marks
everything it sends as not for automation.  Cooldowns live in the campaign's policy memory, so they
survive restarts and rebalances with the campaign's snapshot.
"""

from __future__ import annotations

from typing import Any, Final

from streams.events import SocialEvent
from streams.models.engagement import HOUR_MS
from streams.policy.recommendation import REASONS, Recommendation, recommendation_id
from streams.policy.view import keep_latest
from streams.state import CampaignState
from streams.training import Models

# Minimum evidence, per rule.
MIN_IMPRESSIONS: Final = 200  # per creative, before it takes part in a budget shift
MIN_CONVERSIONS: Final = 10  # campaign, before budget up/down
FATIGUE_MIN_IMPRESSIONS: Final = 300  # a creative's reference click-through, before the CUSUM runs
FATIGUE_MIN_CLICKS: Final = 10
ALERT_MIN_TEXTS: Final = 30  # scored comments of a campaign, before a sentiment alert
REPLY_BATCH: Final = 5  # negative comments waiting, before asking for replies

MAX_SHIFT: Final = 0.2  # most budget share moved by one recommendation

# A defunded creative's retest (shift_budget, reason retest_defunded_creative): bounded in share,
# impressions and time, at most one per creative per cooldown and one per campaign at a time, and
# never for a creative whose own evidence says it is worse.
RETEST_FLOOR: Final = 0.05  # a creative under this share of the budget is defunded
RETEST_AFTER_MS: Final = 2 * HOUR_MS  # defunded this long, and starved of evidence meanwhile
RETEST_SHARE: Final = 0.15  # the share it gets back (taken from the creative paid most)
RETEST_IMPRESSIONS: Final = 600  # for this many impressions, then the usual split decides
RETEST_MAX_MS: Final = 4 * HOUR_MS  # or for this long, if the impressions do not come
RETEST_COOLDOWN_MS: Final = 24 * HOUR_MS  # per creative, from the start of its last retest
RETEST_MIN_CHANCE: Final = 0.3  # chance that a creative as good as the one paid most would
# have converted as little as it did: below it, its evidence says it is worse (no retest)
RETEST_STOP_CHANCE: Final = 0.2  # a retest ends early once that chance falls below this
MAX_COOLDOWNS: Final = 200  # cooldowns kept per campaign before the expired ones are dropped

COOLDOWN_MS: Final = {"shift_budget": HOUR_MS // 2, "increase_budget": 6 * HOUR_MS,
                      "decrease_budget": 6 * HOUR_MS, "pause_creative": 24 * HOUR_MS,
                      "boost_post": 24 * HOUR_MS, "sentiment_alert": 2 * HOUR_MS,
                      "respond_to_comments": HOUR_MS // 4, "schedule_post": 12 * HOUR_MS,
                      "promote_topic": 12 * HOUR_MS}
EXPIRY_MS: Final = {"shift_budget": 6 * HOUR_MS, "increase_budget": 12 * HOUR_MS,
                    "decrease_budget": 12 * HOUR_MS, "pause_creative": 24 * HOUR_MS,
                    "boost_post": 12 * HOUR_MS, "sentiment_alert": 6 * HOUR_MS,
                    "respond_to_comments": 24 * HOUR_MS, "schedule_post": 7 * 24 * HOUR_MS,
                    "promote_topic": 7 * 24 * HOUR_MS}


class Emitter:
    """Applies the guardrails shared by every action and records what passes.

    One per event: rules call it with what they found and get the Recommendation back, or None
    when a cooldown held it back, so a rule can tell whether to reset what it measured."""

    def __init__(self, state: CampaignState, event: SocialEvent, models: Models,
                 found: list[Recommendation], dry_run: bool = False) -> None:
        self.state, self.event, self.models, self.found, self.dry_run = (
            state, event, models, found, dry_run)

    def __call__(self, action: str, target: str, explanation: str,
                 confidence: float, params: dict[str, Any], evidence: dict[str, Any],
                 trigger: str | None = None, reason: str | None = None) -> Recommendation | None:
        """``trigger`` names what the id derives from when it is not the current event (e.g. the
        last comment of a batch), so a replay of the same input gives the same id; ``reason`` is
        one of the action's reason codes (REASONS), its first by default."""
        reason = reason or REASONS[action][0]
        if reason not in REASONS[action]:
            raise ValueError(f"{reason!r} is not a reason code of {action}")
        if self._cooling_down(action, target):
            return None
        now = self.event.ts_ms
        rec = Recommendation(
            recommendation_id(self.state.campaign_id, action, target,
                              trigger or self.event.event_id),
            self.state.campaign_id, action, target, params, reason, explanation,
            max(0.0, min(1.0, confidence)), evidence, self.models.versions(), now,
            now + EXPIRY_MS[action], self.dry_run)
        self.found.append(rec)
        keep_latest(self.state.memory, rec)
        return rec

    def _cooling_down(self, action: str, target: str) -> bool:
        """True while (action, target) is within its cooldown; otherwise starts a new one."""
        cooldowns = self.state.memory.setdefault("cooldown", {})
        key = f"{action}|{target}"
        now = self.event.ts_ms
        if cooldowns.get(key, -1) > now:
            return True
        cooldowns[key] = now + COOLDOWN_MS[action]
        if len(cooldowns) > MAX_COOLDOWNS:  # bounded: forget the expired ones
            for k in [k for k, until in cooldowns.items() if until <= now]:
                del cooldowns[k]
        return False
