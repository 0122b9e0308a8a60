"""A campaign as people look at it (the worker's HTTP endpoint): totals, creatives, budget shares,
sentiment and the latest recommendations.

The latest recommendations are kept in the campaign's policy memory as they pass the guardrails,
so the view needs no other store and survives restarts with the campaign's snapshot; only a short
summary of each is kept, to keep snapshots small.
"""

from __future__ import annotations

from typing import Any, Final

from streams.policy.recommendation import Recommendation
from streams.state import CampaignState

LATEST: Final = 3  # recommendations kept per campaign for its live view (each ~350 bytes)
LATEST_FIELDS: Final = ("recommendation_id", "action", "target", "reason", "explanation",
                        "confidence", "event_time", "expires_at")


def keep_latest(memory: dict[str, Any], rec: Recommendation) -> None:
    """Remember a summary of ``rec`` for the view, forgetting all but the last LATEST."""
    latest = memory.setdefault("latest", [])
    latest.append({k: v for k, v in rec.to_dict().items() if k in LATEST_FIELDS})
    del latest[:-LATEST]


def campaign_view(state: CampaignState) -> dict[str, Any]:
    """A campaign's live state for people: totals, creatives, sentiment, latest recommendations."""
    creatives = {cid: {"impressions": int(s[0]), "clicks": int(s[1]), "conversions": int(s[2]),
                       "spend": round(s[3], 2), "ctr": round(s[1] / s[0], 4) if s[0] else None}
                 for cid, s in sorted(state.creatives.items())}
    return {"campaign_id": state.campaign_id, "event_time": state.last_ts_ms,
            "events": dict(state.counts), "spend": round(state.spend, 2),
            "revenue": round(state.revenue, 2), "creatives": creatives,
            "budget_shares": state.policy.get("shares"),
            "sentiment": dict(state.sentiment),
            "negative_comments_waiting": len(state.negative_comments),
            "recommendations": list(reversed(state.policy.get("latest", [])))}
