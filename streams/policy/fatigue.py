"""Creative fatigue (``pause_creative``): Page's CUSUM on each creative's clicks.

A creative that an audience has seen too often loses click-through gradually and for good; the
CUSUM is the quickest detector of such a drop for a given false-alarm rate. With clicks in the
single digits per 100 impressions, comparing a recent window with an older one paused healthy
creatives daily.
"""

from __future__ import annotations

import math
from typing import Any, Final

from streams.events import SocialEvent
from streams.policy.guardrails import FATIGUE_MIN_CLICKS, FATIGUE_MIN_IMPRESSIONS, Emitter

FATIGUE_DROP: Final = 0.4  # the drop in a creative's click-through that pause_creative is tuned to
FATIGUE_THRESHOLD: Final = 5.0  # CUSUM log-likelihood ratio that confirms it
FATIGUE_DISCOUNT: Final = 0.9999  # per impression: the reference follows slow changes


def pause_creative(memory: dict[str, Any], event: SocialEvent, emit: Emitter) -> None:
    """On each impression or click: advance the creative's CUSUM, and recommend pausing it once
    the statistic confirms a drop; a recommendation that passed the guardrails starts it over."""
    cid = event.creative_id or ""
    # creative -> [reference clicks, reference impressions, statistic, run clicks, run imps]
    f = memory.setdefault("fatigue", {}).setdefault(cid, [0.0, 0.0, 0.0, 0, 0])
    p0 = _step(f, event.type == "click")
    statistic = f[2]
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


def _step(f: list[Any], click: bool) -> float:
    """Advance ``f`` by one impression (or click) and return the reference click-through the
    statistic was tested against.

    The statistic tests a drop of FATIGUE_DROP against the creative's own reference rate, once
    that has enough evidence. The reference is the creative's own click-through, slowly
    discounted: it follows a drop too, but slower than the statistic confirms it (learning only
    from stretches without suspicion biased it upwards: those end on a click)."""
    statistic = f[2]
    p0: float = min(f[0] / f[1], 0.5) if f[1] else 0.0
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
    return p0
