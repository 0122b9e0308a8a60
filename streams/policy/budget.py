"""The campaign's total budget (``increase_budget``, ``decrease_budget``): pacing by cost per
conversion, recent against the campaign's own history.

A campaign's own average is the benchmark because costs differ by orders of magnitude between
platforms, audiences and products: a recent cost per conversion well below it says money is
buying results cheaply now (raise while it lasts), well above it says the audience or the
creatives are wearing out (lower until it recovers).
"""

from __future__ import annotations

from typing import Final

from streams.events import SocialEvent
from streams.policy.guardrails import COOLDOWN_MS, MAX_SHIFT, MIN_CONVERSIONS, Emitter
from streams.records import BudgetChange, Pacing, PolicyMemory
from streams.state import CampaignState

RECENT_DECAY: Final = 0.9  # per spend event: the weight left on what came before
CHEAP: Final = 0.7  # recent cost per conversion below this share of the average: increase
DEAR: Final = 1.4  # above this share of it: decrease


def pace(memory: PolicyMemory, state: CampaignState, event: SocialEvent,
         emit: Emitter) -> None:
    """On each spend event: update the recent cost per conversion and recommend a change when it
    is far from the campaign's average, once the campaign has MIN_CONVERSIONS conversions."""
    recent = memory.get("recent")
    if recent is None:
        recent = memory["recent"] = Pacing(0.0, 0.0, 0)
    conversions = sum(s.conversions for s in state.creatives.values())
    recent.spend = recent.spend * RECENT_DECAY + (event.amount or 0.0)
    recent.conversions = (recent.conversions * RECENT_DECAY
                          + (conversions - recent.conversions_then))
    recent.conversions_then = conversions
    if conversions < MIN_CONVERSIONS or state.spend <= 0 or recent.conversions < 1:
        return
    evidence = {"cpa_recent": round(recent.spend / recent.conversions, 4),
                "cpa_campaign": round(state.spend / conversions, 4),
                "conversions": conversions, "spend": round(state.spend, 2)}
    if evidence["cpa_campaign"] <= 0:
        return
    ratio = evidence["cpa_recent"] / evidence["cpa_campaign"]
    action = "increase_budget" if ratio < CHEAP else "decrease_budget" if ratio > DEAR else None
    last = memory.get("budget_last")  # the last change recommended
    if action is None or (last is not None and last.action != action
                          and event.ts_ms < last.ts_ms + COOLDOWN_MS[last.action]):
        return  # nothing to say, or it would reverse a change still within its cooldown
    text = (f"Recent cost per conversion ({evidence['cpa_recent']}) is {abs(1 - ratio):.0%} "
            f"{'below' if ratio < 1 else 'above'} the campaign's average "
            f"({evidence['cpa_campaign']} over {conversions} conversions): ")
    if action == "increase_budget":
        rec = emit(action, state.campaign_id, text + "raise the budget while it lasts.",
                   min(1.0, 1.3 - ratio), params={"change": round(min(MAX_SHIFT, 1 - ratio), 4)},
                   evidence=evidence)
    else:
        rec = emit(action, state.campaign_id, text + "lower the budget until it recovers.",
                   min(1.0, ratio / 2), params={"change": round(-min(MAX_SHIFT, ratio - 1), 4)},
                   evidence=evidence)
    if rec is not None:
        memory["budget_last"] = BudgetChange(event.ts_ms, action)
