"""Campaign decisions: from a campaign's state and the models' outputs, the recommendations worth
sending, each through the same guardrails (streams/policy/guardrails.py).

``Policy.decide`` is pure given its inputs and called once per applied event, after the pipeline
updated the state; it only looks at what that event could have changed, so it stays cheap.
Everything it remembers (bandit posteriors, fatigue statistics, sentiment averages, cooldowns)
lives in ``CampaignState.policy``: durable with the campaign, and deterministic for a given input
stream and model lineage, so the same stream yields the same recommendation ids. The order in
which rules run for one event is part of that determinism (a rule may change what the next sees).
"""

from __future__ import annotations

from typing import Final

from streams.events import SocialEvent
from streams.policy import allocation, budget, community, content, fatigue
from streams.policy.guardrails import Emitter
from streams.policy.recommendation import Recommendation
from streams.state import CampaignState
from streams.training import Models

SHIFT_EVERY: Final = 100  # impressions of a creative between two looks at the budget split


class Policy:
    """The nine rules of DESIGN.md section 4 behind one call per event; ``dry_run`` marks every
    recommendation as meant for review, not automation (worker setting SOCIALSTREAM_DRY_RUN)."""

    def __init__(self, dry_run: bool = False) -> None:
        self.dry_run = dry_run

    def decide(self, state: CampaignState, event: SocialEvent, models: Models,
               predicted: str | None) -> list[Recommendation]:
        """Recommendations this event makes due (most events make none)."""
        memory = state.memory
        found: list[Recommendation] = []
        emit = Emitter(state, event, models, found, self.dry_run)
        kind = event.type
        if kind in ("impression", "click", "conversion"):
            allocation.observe(memory, event)
            # a pause recommended: the budget split forgets what it knew of the creative
            if kind != "conversion" and fatigue.pause_creative(memory, event, emit):
                allocation.after_drop(memory, event.creative_id or "")
            stats = state.creatives.get(event.creative_id or "")
            # every SHIFT_EVERY impressions, however many one event reports
            if kind == "impression" and stats is not None \
                    and stats.impressions // SHIFT_EVERY \
                    > (stats.impressions - event.count) // SHIFT_EVERY:
                allocation.shift_budget(memory, state, event, emit)
        elif kind == "spend":
            budget.pace(memory, state, event, emit)
        elif kind == "comment" and predicted is not None:
            community.sentiment_alert(memory, state, predicted, emit)
            community.respond_to_comments(state, emit)
        elif kind == "post":
            content.plan_posts(memory, state, event, models, emit)
        if kind in ("reaction", "share", "comment"):
            content.boost_post(memory, state, event, models, emit)
        return found

    def post_outcome(self, state: CampaignState, topics: list[str], x: dict[str, float],
                     engagements: int, models: Models) -> None:
        """A post's engagement is known: the campaign's topic lifts learn from it (content)."""
        content.learn_topic_lift(state.memory, topics, x, engagements, models)
