"""The community around a campaign: surges of negative comments (``sentiment_alert``) and
negative comments waiting for a reply (``respond_to_comments``).

A surge is measured against the campaign's own baseline, not a fixed share: some audiences
complain more than others, and what matters to the people running a campaign is a change.
"""

from __future__ import annotations

from typing import Final

from streams.policy.guardrails import ALERT_MIN_TEXTS, REPLY_BATCH, Emitter
from streams.records import NegativeShare, PolicyMemory
from streams.state import CampaignState

ALERT_RISE: Final = 0.25  # fast negative share above the slow baseline
ALERT_LEVEL: Final = 0.45  # and the fast negative share itself at least this
HIGH_SEVERITY: Final = 0.6  # fast negative share above which an alert is "high", not "medium"
FAST: Final = 0.1  # the recent negative share's weight on each new comment
SLOW: Final = 0.01  # the baseline's


def sentiment_alert(memory: PolicyMemory, state: CampaignState, predicted: str,
                    emit: Emitter) -> None:
    """On each scored comment: update the fast and slow negative shares and alert when the fast
    one rises well above the slow one."""
    avg = memory.setdefault("negative", NegativeShare(0.0, 0.0, 0))
    negative = 1.0 if predicted == "negative" else 0.0
    avg.texts += 1
    # Plain means until there are enough texts for the exponential ones: otherwise the first
    # comment sets the baseline for hundreds (a negative first comment hid a crisis).
    avg.fast += max(FAST, 1 / avg.texts) * (negative - avg.fast)
    avg.slow += max(SLOW, 1 / avg.texts) * (negative - avg.slow)
    recent, usual = round(avg.fast, 4), round(avg.slow, 4)
    rise = recent - usual
    if avg.texts >= ALERT_MIN_TEXTS and rise > ALERT_RISE and recent > ALERT_LEVEL:
        severity = "high" if recent > HIGH_SEVERITY else "medium"
        emit("sentiment_alert", state.campaign_id,
             f"Negative comments rose to {recent:.0%} of recent ones against a usual "
             f"{usual:.0%} over {avg.texts} scored comments: check what people react to.",
             min(1.0, rise / 0.5), params={"severity": severity},
             evidence={"negative_share_recent": recent, "negative_share_baseline": usual,
                       "texts": avg.texts})


def respond_to_comments(state: CampaignState, emit: Emitter) -> None:
    """Hand the negative comments waiting for a reply over in batches of REPLY_BATCH; the id
    derives from the batch's last comment, so a replay hands over the same batches."""
    waiting = state.negative_comments
    if len(waiting) >= REPLY_BATCH:
        rec = emit("respond_to_comments", state.campaign_id,
                   f"{len(waiting)} negative comments are waiting for a reply.",
                   0.8, params={"comment_ids": list(waiting)},
                   evidence={"count": len(waiting)}, trigger=waiting[-1])
        if rec is not None:
            waiting.clear()  # handed over: the next batch starts empty
