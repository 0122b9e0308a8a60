"""A campaign as people look at it (the worker's HTTP endpoint): totals, creatives, budget shares,
sentiment and the latest recommendations.

The latest recommendations are kept in the campaign's policy memory as they pass the guardrails,
so the view needs no other store and survives restarts with the campaign's snapshot; only a short
summary of each is kept, to keep snapshots small.
"""

from __future__ import annotations

from typing import Any, Final

from streams.policy.recommendation import Recommendation
from streams.records import PolicyMemory, RecommendationSummary
from streams.state import CampaignState

LATEST: Final = 3  # recommendations kept per campaign for its live view (each ~350 bytes)


def keep_latest(memory: PolicyMemory, rec: Recommendation) -> None:
    """Remember a summary of ``rec`` for the view, forgetting all but the last LATEST."""
    latest = memory.setdefault("latest", [])
    latest.append(RecommendationSummary(
        recommendation_id=rec.recommendation_id, action=rec.action, target=rec.target,
        reason=rec.reason, explanation=rec.explanation,
        confidence=round(rec.confidence, 4),  # as in the message (Recommendation.to_dict)
        event_time=rec.event_time, expires_at=rec.expires_at))
    del latest[:-LATEST]


def campaign_view(state: CampaignState) -> dict[str, Any]:
    """A campaign's live state for people: totals, creatives, sentiment, latest recommendations."""
    creatives = {cid: {"impressions": s.impressions, "clicks": s.clicks,
                       "conversions": s.conversions, "spend": round(s.spend, 2),
                       "ctr": round(s.clicks / s.impressions, 4) if s.impressions else None}
                 for cid, s in sorted(state.creatives.items(), key=lambda item: item[0])}
    return {"campaign_id": state.campaign_id, "event_time": state.last_ts_ms,
            "events": dict(state.counts), "spend": round(state.spend, 2),
            "revenue": round(state.revenue, 2), "creatives": creatives,
            "budget_shares": state.memory.get("shares"),
            "sentiment": dict(state.sentiment),
            "negative_comments_waiting": len(state.negative_comments),
            "recommendations": list(reversed(state.memory.get("latest", [])))}
