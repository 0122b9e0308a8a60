"""The named, typed records a campaign's state is made of (streams/state.py) and what the policy
remembers between events (streams/policy/), with their wire form.

Each record is a msgspec Struct with ``array_like=True``: its JSON is the positional list that
snapshots have always held (e.g. ``[impressions, clicks, conversions, spend, first_seen_ms]``),
so snapshots written before the records had names restore, and new ones are byte for byte what
they were.  ``to_builtins`` gives that form (what orjson then writes) and ``convert`` reads it back,
checking every type.  Append a field only at the end, with a default, or old snapshots stop
restoring.

``gc=False``: the records hold numbers, strings and flat containers, never a cycle, and a
GC-tracked Struct pays on every attribute store (measured 2.5x the cost of a list's item store;
untracked, as cheap), while these are updated on every impression.

The policy memory itself stays a dict (a ``TypedDict``): its keys appear as the rules first need
them, and a snapshot keeps that order.
"""

from __future__ import annotations

from typing import TypedDict

import msgspec


class Record(msgspec.Struct, array_like=True, gc=False):
    """Base of the records below: a positional list on the wire, attributes in code."""


# -- campaign state (streams/state.py) -----------------------------------------------------------

class CreativeStats(Record):
    """Delivery of one creative so far (``CampaignState.creatives``)."""

    impressions: int
    clicks: int
    conversions: int
    spend: float
    first_seen_ms: int


class ImpressionWindow(Record):
    """An open window of a creative's impressions: the engagement model's prediction when it
    opened, and what happened since (``CampaignState.windows``)."""

    features: dict[str, float]
    predicted: float  # P(click)
    impressions: int
    clicks: int


class PostTraits(Record):
    """What a post's features are built from (``streams.models.engagement.post_traits``)."""

    platform: str
    ts_ms: int
    text_length: int
    topics: list[str]
    sentiment: str | None

    def as_list(self) -> list[object]:
        """The form ``post_features`` takes."""
        return [self.platform, self.ts_ms, self.text_length, self.topics, self.sentiment]


class PendingPost(Record):
    """A post within its horizon: its engagement so far against the prediction made when it was
    posted (``CampaignState.pending_posts``)."""

    traits: PostTraits
    predicted: float  # engagements over the horizon
    ts_ms: int
    engagements: int


class CompactText(Record):
    """A text's sentiment features as ``SentimentModel.compact`` gives them: hashed token buckets
    and dense cues (``SentimentModel.expand`` takes ``as_list()``)."""

    tokens: list[int]
    cues: list[float | int]  # as given: an int stays an int, so a restored snapshot is the same

    def as_list(self) -> list[object]:
        return [self.tokens, self.cues]


class PendingText(Record):
    """A scored text waiting for a late label (``CampaignState.pending_texts``)."""

    features: CompactText
    predicted: str
    ts_ms: int


# -- policy memory (streams/policy/) -------------------------------------------------------------

class Arm(Record):
    """A creative's discounted evidence of conversions per impression (allocation): its
    conversions, its impressions without one, and its clicks (0 in a snapshot written before
    clicks were counted)."""

    conversions: float
    failures: float  # impressions without a conversion
    clicks: float = 0.0

    @property
    def impressions(self) -> float:
        """The (discounted) impressions: those that converted and those that did not."""
        return self.conversions + self.failures


class Fatigue(Record):
    """A creative's CUSUM on clicks (fatigue): the discounted reference before the current run,
    the statistic, and the run since the statistic was last zero."""

    ref_clicks: float
    ref_impressions: float
    statistic: float
    run_clicks: int
    run_impressions: int


class Defunded(Record):
    """Since when a creative has been under the retest floor, and its impressions then."""

    since_ms: int
    impressions: int


class Retest(Record):
    """The retest running: its creative, until how many impressions, until when."""

    creative: str
    until_impressions: int
    until_ms: int


class Pacing(Record):
    """Recent spend and conversions (both exponentially weighted per spend event), and the
    campaign's conversions at the last spend event (budget)."""

    spend: float
    conversions: float
    conversions_then: int


class BudgetChange(Record):
    """The last budget change recommended: when, and which action."""

    ts_ms: int
    action: str


class NegativeShare(Record):
    """Fast and slow averages of negative comments, and the texts seen (community)."""

    fast: float
    slow: float
    texts: int


class TopicLift(Record):
    """How a topic's posts did for this campaign against the global model (content): the sum of
    log residuals and the posts behind it."""

    residuals: float
    posts: int


class RecommendationSummary(TypedDict):
    """A recommendation as the live view keeps it (streams/policy/view.py)."""

    recommendation_id: str
    action: str
    target: str
    reason: str
    explanation: str
    confidence: float
    event_time: int
    expires_at: int


class PolicyMemory(TypedDict, total=False):
    """``CampaignState.memory``: each key appears when a rule first needs it."""

    arms: dict[str, Arm]  # creative -> posterior
    shares: dict[str, float]  # the budget split last recommended
    defunded: dict[str, Defunded]
    retest: Retest
    retested: dict[str, int]  # creative -> start of its last retest
    fatigue: dict[str, Fatigue]
    recent: Pacing
    budget_last: BudgetChange
    negative: NegativeShare
    post_outcomes: list[int]  # engagements of the campaign's last finished posts
    posts_done: int
    topics: list[str]  # the last topics posted about
    topic_lift: dict[str, TopicLift]
    cooldown: dict[str, int]  # "action|target" -> end of its cooldown
    latest: list[RecommendationSummary]
