"""The output contract (DESIGN.md section 4): the actions, their stable reason codes, the
``Recommendation`` record and its deterministic id.

Consumers key on what is here: ``recommendation_id`` de-duplicates redelivered recommendations, so
it depends only on the campaign, the action, its target and the event that triggered it, never on
wall-clock time or on which worker computed it. Changing anything here is a contract change
(streams/schemas/recommendation.schema.json, docs/recommendations.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

SCHEMA_VERSION: Final = 1
ACTIONS: Final = ("shift_budget", "increase_budget", "decrease_budget", "pause_creative",
                  "boost_post", "sentiment_alert", "respond_to_comments", "schedule_post",
                  "promote_topic")

REASONS: Final[dict[str, tuple[str, ...]]] = {
    # the stable reason codes of each action (the contract's `reason`), its usual one first
    "shift_budget": ("bandit_best_creative", "retest_defunded_creative"),
    "increase_budget": ("cpa_below_average",),
    "decrease_budget": ("cpa_above_average",),
    "pause_creative": ("ctr_fatigue",),
    "boost_post": ("early_engagement_above_prediction",),
    "sentiment_alert": ("negative_surge",),
    "respond_to_comments": ("negative_comments_waiting",),
    "schedule_post": ("better_hours_predicted",),
    "promote_topic": ("topic_engagement_predicted",),
}


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One entry of the recommendations topic (DESIGN.md section 4)."""

    recommendation_id: str
    campaign_id: str
    action: str
    target: str
    params: dict[str, Any]
    reason: str
    explanation: str
    confidence: float
    evidence: dict[str, Any]
    model_versions: dict[str, int]
    event_time: int
    expires_at: int
    dry_run: bool = False
    schema_version: int = field(default=SCHEMA_VERSION)

    def to_dict(self) -> dict[str, Any]:
        """The message as published; confidence is rounded so the JSON stays short and stable."""
        return {"schema_version": self.schema_version,
                "recommendation_id": self.recommendation_id, "campaign_id": self.campaign_id,
                "action": self.action, "target": self.target, "params": self.params,
                "reason": self.reason, "explanation": self.explanation,
                "confidence": round(self.confidence, 4), "evidence": self.evidence,
                "model_versions": self.model_versions, "event_time": self.event_time,
                "expires_at": self.expires_at, "dry_run": self.dry_run}


def recommendation_id(campaign_id: str, action: str, target: str, trigger: str) -> str:
    """Deterministic: the same triggering event gives the same id however often it is seen."""
    key = f"{campaign_id}|{action}|{target}|{trigger}".encode()
    return hashlib.blake2b(key, digest_size=12).hexdigest()
