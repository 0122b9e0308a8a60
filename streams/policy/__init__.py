"""Campaign decisions, one module per concern:

- ``recommendation``: the output contract (actions, reason codes, the record, deterministic ids);
- ``guardrails``: minimum evidence, cooldowns, expiry, the budget cap and dry-run, for every rule;
- ``decide``: ``Policy``, which hands each applied event to the rules it can make due;
- ``view``: a campaign's live state for the worker's HTTP endpoint.

What other modules import is re-exported here, so ``from streams.policy import ...`` keeps working
whichever module a name lives in.
"""

from streams.policy.decide import Policy
from streams.policy.guardrails import COOLDOWN_MS, EXPIRY_MS
from streams.policy.recommendation import (
    ACTIONS,
    REASONS,
    SCHEMA_VERSION,
    Recommendation,
    recommendation_id,
)
from streams.policy.view import campaign_view

__all__ = ["ACTIONS", "COOLDOWN_MS", "EXPIRY_MS", "REASONS", "SCHEMA_VERSION", "Policy",
           "Recommendation", "campaign_view", "recommendation_id"]
