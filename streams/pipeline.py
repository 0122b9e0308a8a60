"""The one straight line every valid event takes: event -> campaign state -> features -> models ->
policy -> outcome (examples for the trainer, recommendations).

``Pipeline.process`` is pure and synchronous: the worker and offline replay call the same code.
It scores with whatever ``Models`` it holds (workers swap in newer versions as the trainer
publishes them) and never trains them: labels and known outcomes leave as ``Example`` records for
the single trainer, so there is one learning lineage however many workers run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple, TypeVar

from streams.events import MAX_TS_MS, SocialEvent
from streams.models.engagement import (
    DAY_MS,
    POST_HORIZON_MS,
    creative_features,
    post_features,
    post_traits,
)
from streams.models.sentiment import SentimentModel, top
from streams.policy import Policy, Recommendation
from streams.records import (
    CompactText,
    CreativeStats,
    ImpressionWindow,
    PendingPost,
    PendingText,
    PostTraits,
)
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


@dataclass(slots=True)
class Processed:
    """What ``Pipeline.process_many`` did: the worker's bookkeeping for a unit of events."""

    applied: dict[str, int] = field(default_factory=dict)  # events applied, by type
    duplicates: int = 0  # events skipped as already applied
    latest_ts_ms: int = 0  # latest event time among the applied
    # labelled texts: "inline" (label on the text), "joined" (a late label found its text),
    # "orphaned" (it did not)
    labels: dict[str, int] = field(default_factory=dict)
    examples: list[tuple[CampaignState, list[Example]]] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)
    failed: list[tuple[int, Exception]] = field(default_factory=list)  # (index, what it raised)


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
        examples: list[Example] = []
        step = self._step(self.store.get(event.campaign_id), event, position, examples)
        if step is None:
            return Outcome(event, applied=False)
        sentiment, recommendations = step
        return Outcome(event, True, sentiment, tuple(examples) if examples else (),
                       tuple(recommendations) if recommendations else ())

    def process_many(self, events: Sequence[SocialEvent],
                     positions: Sequence[Position]) -> Processed:
        """``process`` over consecutive events of one partition (the worker's fetch units), with
        what they did summed: the same steps, in the same order, without an Outcome per event.
        An event whose processing raised is left out (the caller dead-letters it) and the rest
        go on, as with ``process``."""
        done = Processed()
        applied, labels = done.applied, done.labels
        store, step = self.store, self._step
        campaign_id, state = "", None
        examples: list[Example] = []
        for index, event in enumerate(events):
            try:
                if state is None or event.campaign_id != campaign_id:
                    state, campaign_id = None, event.campaign_id
                    state = store.get(campaign_id)
                result = step(state, event, positions[index], examples)
            except Exception as exc:  # the caller keeps the event, visibly
                done.failed.append((index, exc))
                examples = []
                continue
            if result is None:
                done.duplicates += 1
                continue
            kind = event.type
            applied[kind] = applied.get(kind, 0) + 1
            if event.ts_ms > done.latest_ts_ms:
                done.latest_ts_ms = event.ts_ms
            if event.sentiment is not None:
                label = ("joined" if examples else "orphaned") if kind == "label" else "inline"
                labels[label] = labels.get(label, 0) + 1
            if examples:
                done.examples.append((state, examples))
                examples = []
            if result[1]:
                done.recommendations.extend(result[1])
        return done

    def _step(self, state: CampaignState, event: SocialEvent, position: Position,
              examples: list[Example]) -> tuple[dict[str, float] | None,
                                                list[Recommendation]] | None:
        """Apply one event to its campaign's state: (its sentiment scores, its recommendations),
        the examples it completed appended to ``examples``; None if it was applied before."""
        if position != NO_POSITION and position <= state.applied:
            return None
        event_hash = id_hash(event.event_id)
        if state.seen(event_hash):
            state.duplicates += 1
            return None
        state.remember(event_hash)
        if position != NO_POSITION:
            state.applied = position
        state.counts[event.type] += event.count
        if event.ts_ms > state.last_ts_ms:
            state.last_ts_ms = event.ts_ms
            if state.pending_posts and event.ts_ms >= state.posts_due_ms:
                self._close_posts(state, examples)
        sentiment = self._apply(state, event, examples)
        return sentiment, self.policy.decide(state, event, self.models,
                                             top(sentiment) if sentiment else None)

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
            tokens, cues = SentimentModel.compact(x)
            _bounded_put(state.pending_texts, event.event_id,
                         PendingText(CompactText(tokens, cues), predicted, event.ts_ms),
                         MAX_PENDING_TEXTS)
        if event.type == "post" and event.post_id is not None:
            traits = post_traits(event, predicted)
            _bounded_put(state.pending_posts, event.post_id,
                         PendingPost(PostTraits(*traits),
                                     self.models.posts.predict_one(post_features(traits)),
                                     event.ts_ms, 0), MAX_PENDING_POSTS)
            state.posts_due_ms = min(state.posts_due_ms, event.ts_ms + self.horizon_ms)
        else:
            self._engage(state, event)
            if predicted == "negative":
                state.negative_comments.append(event.event_id)
                del state.negative_comments[:-MAX_NEGATIVE_COMMENTS]
        return proba

    def _engage(self, state: CampaignState, event: SocialEvent) -> None:
        post = state.pending_posts.get(event.post_id or "")
        if post is not None and event.ts_ms - post.ts_ms <= self.horizon_ms:
            post.engagements += 1

    def _close_posts(self, state: CampaignState, examples: list[Example]) -> None:
        """Posts whose horizon the campaign's event time has passed: their outcome is known."""
        horizon, now = self.horizon_ms, state.last_ts_ms
        due = [pid for pid, p in state.pending_posts.items() if p.ts_ms + horizon <= now]
        state.posts_due_ms = min((p.ts_ms + horizon for pid, p in state.pending_posts.items()
                                  if p.ts_ms + horizon > now), default=MAX_TS_MS)
        for post_id in due:
            post = state.pending_posts.pop(post_id)
            x = post_features(post.traits.as_list())
            examples.append(Example(f"post:{state.campaign_id}:{post_id}:{post.ts_ms}", "post",
                                    x, post.engagements, post.predicted))
            self.policy.post_outcome(state, post.traits.topics, x, post.engagements,
                                     self.models)

    def _label(self, state: CampaignState, event: SocialEvent,
               examples: list[Example]) -> None:
        text = state.pending_texts.pop(event.target_event_id or "", None)
        if text is None or event.ts_ms - text.ts_ms > TEXT_TTL_MS:
            state.orphan_labels += 1
            return
        examples.append(Example(f"sentiment:{event.target_event_id}", "sentiment",
                                SentimentModel.expand(text.features.as_list()), event.sentiment,
                                text.predicted))

    def _creative(self, state: CampaignState, event: SocialEvent,
                  examples: list[Example]) -> None:
        cid = event.creative_id or ""
        stats = state.creatives.get(cid)
        if stats is None:
            stats = CreativeStats(0, 0, 0, 0.0, event.ts_ms)
            _bounded_put(state.creatives, cid, stats, MAX_CREATIVES)
        if event.type == "impression":
            stats.impressions += event.count
            self._impression(state, event, cid, stats.first_seen_ms, examples)
        elif event.type == "click":
            stats.clicks += event.count
            window = state.windows.get(cid)
            if window is not None:
                window.clicks += event.count
        elif event.type == "conversion":
            stats.conversions += event.count
            state.revenue += event.amount or 0.0
        else:
            stats.spend += event.amount or 0.0
            state.spend += event.amount or 0.0

    def _impression(self, state: CampaignState, event: SocialEvent, cid: str,
                    first_seen_ms: int, examples: list[Example]) -> None:
        window = state.windows.get(cid)
        if window is None:
            x = creative_features(event, first_seen_ms)
            window = ImpressionWindow(x, self.models.creatives.predict_one(x), 0, 0)
            _bounded_put(state.windows, cid, window, MAX_CREATIVES)
        window.impressions += event.count
        if window.impressions >= self.window:  # aggregated input may overshoot: one outcome
            del state.windows[cid]
            examples.append(Example(f"creative:{state.campaign_id}:{cid}:{event.event_id}",
                                    "creative", window.features,
                                    [window.clicks, window.impressions], window.predicted))


Record = TypeVar("Record")


def _bounded_put(mapping: dict[str, Record], key: str, value: Record, cap: int) -> None:
    """Insert, evicting the oldest entries beyond ``cap`` (dicts keep insertion order)."""
    mapping[key] = value
    while len(mapping) > cap:
        del mapping[next(iter(mapping))]
