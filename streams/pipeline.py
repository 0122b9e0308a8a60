"""The one straight line every valid event takes: event -> campaign state -> features -> models ->
policy -> outcome (examples for the trainer, recommendations).

``Pipeline.process`` is pure and synchronous: the worker and offline replay call the same code.
It scores with whatever ``Models`` it holds (workers swap in newer versions as the trainer
publishes them) and never trains them: labels and known outcomes leave as ``Example`` records for
the single trainer, so there is one learning lineage however many workers run.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from streams.events import SocialEvent
from streams.models.engagement import (
    DAY_MS,
    POST_HORIZON_MS,
    creative_features,
    post_features,
    post_traits,
)
from streams.models.sentiment import SentimentModel, top
from streams.policy import Policy, Recommendation
from streams.state import (
    MAX_CREATIVES,
    MAX_PENDING_POSTS,
    MAX_PENDING_TEXTS,
    NO_POSITION,
    CampaignState,
    CampaignStore,
    Position,
    id_hash,
)
from streams.training import Example, Models

TEXT_TTL_MS: Final = 7 * DAY_MS  # a label later than this after its text is an orphan
MAX_NEGATIVE_COMMENTS: Final = 50


class Outcome(NamedTuple):
    """What one event produced: whether it was applied (False: already applied, a duplicate),
    its sentiment scores if it carried text, and the examples it completed.  A NamedTuple, not a
    frozen dataclass: one is made per event, at a third of the cost."""

    event: SocialEvent
    applied: bool = True
    sentiment: dict[str, float] | None = None
    examples: tuple[Example, ...] = ()
    recommendations: tuple[Recommendation, ...] = ()


class Pipeline:
    """Stateful per worker; ``process`` is called once per valid event, in partition order."""

    def __init__(self, models: Models | None = None, horizon_ms: int = POST_HORIZON_MS,
                 window: int = 100, policy: Policy | None = None) -> None:
        self.models = models or Models()
        self.policy = policy or Policy()
        self.store = CampaignStore()
        self.horizon_ms = horizon_ms
        self.window = window

    def process(self, event: SocialEvent, position: Position = NO_POSITION) -> Outcome:
        state = self.store.get(event.campaign_id)
        if position != NO_POSITION and position <= state.applied:
            return Outcome(event, applied=False)
        event_hash = id_hash(event.event_id)
        if state.seen(event_hash):
            state.duplicates += 1
            return Outcome(event, applied=False)
        state.remember(event_hash)
        if position != NO_POSITION:
            state.applied = position
        state.counts[event.type] += event.count
        examples: list[Example] = []
        if event.ts_ms > state.last_ts_ms:
            state.last_ts_ms = event.ts_ms
            if state.pending_posts:
                self._close_posts(state, examples)
        sentiment = self._apply(state, event, examples)
        recommendations = self.policy.decide(state, event, self.models,
                                             top(sentiment) if sentiment else None)
        return Outcome(event, True, sentiment, tuple(examples) if examples else (),
                       tuple(recommendations) if recommendations else ())

    def _apply(self, state: CampaignState, event: SocialEvent,
               examples: list[Example]) -> dict[str, float] | None:
        kind = event.type
        if kind in ("post", "comment"):
            return self._text(state, event, examples)
        if kind in ("reaction", "share"):
            self._engage(state, event)
        elif kind == "label":
            self._label(state, event, examples)
        elif kind in ("impression", "click", "conversion", "spend"):
            self._creative(state, event, examples)
        return None

    def _text(self, state: CampaignState, event: SocialEvent,
              examples: list[Example]) -> dict[str, float]:
        proba, x = self.models.sentiment.score(event.text or "")
        predicted = top(proba)
        state.sentiment[predicted] += 1
        if event.sentiment is not None:
            examples.append(Example(f"sentiment:{event.event_id}", "sentiment", x,
                                    event.sentiment, predicted))
        else:
            _bounded_put(state.pending_texts, event.event_id,
                         [SentimentModel.compact(x), predicted, event.ts_ms], MAX_PENDING_TEXTS)
        if event.type == "post" and event.post_id is not None:
            traits = post_traits(event, predicted)
            _bounded_put(state.pending_posts, event.post_id,
                         [traits, self.models.posts.predict_one(post_features(traits)),
                          event.ts_ms, 0], MAX_PENDING_POSTS)
        else:
            self._engage(state, event)
            if predicted == "negative":
                state.negative_comments.append(event.event_id)
                del state.negative_comments[:-MAX_NEGATIVE_COMMENTS]
        return proba

    def _engage(self, state: CampaignState, event: SocialEvent) -> None:
        post = state.pending_posts.get(event.post_id or "")
        if post is not None and event.ts_ms - post[2] <= self.horizon_ms:
            post[3] += 1

    def _close_posts(self, state: CampaignState, examples: list[Example]) -> None:
        """Posts whose horizon the campaign's event time has passed: their outcome is known."""
        due = [pid for pid, p in state.pending_posts.items()
               if p[2] + self.horizon_ms <= state.last_ts_ms]
        for post_id in due:
            traits, predicted, ts_ms, engagements = state.pending_posts.pop(post_id)
            x = post_features(traits)
            examples.append(Example(f"post:{state.campaign_id}:{post_id}:{ts_ms}", "post",
                                    x, engagements, predicted))
            self.policy.post_outcome(state, traits[3], x, engagements, self.models)

    def _label(self, state: CampaignState, event: SocialEvent,
               examples: list[Example]) -> None:
        text = state.pending_texts.pop(event.target_event_id or "", None)
        if text is None or event.ts_ms - text[2] > TEXT_TTL_MS:
            state.orphan_labels += 1
            return
        compact, predicted, _ = text
        examples.append(Example(f"sentiment:{event.target_event_id}", "sentiment",
                                SentimentModel.expand(compact), event.sentiment, predicted))

    def _creative(self, state: CampaignState, event: SocialEvent,
                  examples: list[Example]) -> None:
        cid = event.creative_id or ""
        stats = state.creatives.get(cid)
        if stats is None:
            stats = [0, 0, 0, 0.0, event.ts_ms]
            _bounded_put(state.creatives, cid, stats, MAX_CREATIVES)
        if event.type == "impression":
            stats[0] += event.count
            self._impression(state, event, cid, stats[4], examples)
        elif event.type == "click":
            stats[1] += event.count
            window = state.windows.get(cid)
            if window is not None:
                window[3] += event.count
        elif event.type == "conversion":
            stats[2] += event.count
            state.revenue += event.amount or 0.0
        else:
            stats[3] += event.amount or 0.0
            state.spend += event.amount or 0.0

    def _impression(self, state: CampaignState, event: SocialEvent, cid: str,
                    first_seen_ms: float, examples: list[Example]) -> None:
        window = state.windows.get(cid)
        if window is None:
            x = creative_features(event, int(first_seen_ms))
            window = [x, self.models.creatives.predict_one(x), 0, 0]
            _bounded_put(state.windows, cid, window, MAX_CREATIVES)
        window[2] += event.count
        if window[2] >= self.window:  # aggregated input may overshoot: still one outcome
            x, predicted, impressions, clicks = state.windows.pop(cid)
            examples.append(Example(f"creative:{state.campaign_id}:{cid}:{event.event_id}",
                                    "creative", x, [clicks, impressions], predicted))


def _bounded_put(mapping: dict[str, Any], key: str, value: Any, cap: int) -> None:
    """Insert, evicting the oldest entries beyond ``cap`` (dicts keep insertion order)."""
    mapping[key] = value
    while len(mapping) > cap:
        del mapping[next(iter(mapping))]
