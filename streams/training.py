"""One learning lineage for the global models.

Partitions never train the global models themselves: they turn labels and known outcomes into
``Example`` records, and a single ``Trainer`` learns them in order (in a worker: the owner of the
single-partition training topic; in replay: in-process).  Each learned example advances the
version and a lineage hash, so two processes that learned the same examples in the same order can
prove it.  Example ids are deterministic, so an example re-sent after a restart is learned once.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from streams.models.engagement import CreativeClickModel, PostEngagementModel
from streams.models.sentiment import SentimentModel
from streams.state import id_hash

Kind = Literal["sentiment", "post", "creative"]
MAX_SEEN_EXAMPLES: Final = 20_000  # re-sent examples arrive within a commit interval or two
EXAMPLES_PER_MESSAGE: Final = 16  # about a millisecond of learning per training-topic message


@dataclass(frozen=True, slots=True)
class Example:
    """A labelled example: features, the outcome, and what was predicted before it was known."""

    example_id: str
    kind: Kind
    x: dict[str, float]
    y: Any  # sentiment label | engagement count | [clicks, impressions]
    predicted: Any

    def to_bytes(self) -> bytes:
        return orjson.dumps({"id": self.example_id, "kind": self.kind, "x": self.x,
                             "y": self.y, "predicted": self.predicted})

    @classmethod
    def from_bytes(cls, data: bytes) -> Example:
        raw = orjson.loads(data)
        return cls(raw["id"], raw["kind"], raw["x"], raw["y"], raw["predicted"])


def pack_examples(examples: list[bytes]) -> list[bytes]:
    """Examples as training-topic messages of up to EXAMPLES_PER_MESSAGE lines each: a commit
    sends thousands, and one message apiece cost the event loop 20-30 ms of producer calls."""
    return [b"\n".join(examples[i:i + EXAMPLES_PER_MESSAGE])
            for i in range(0, len(examples), EXAMPLES_PER_MESSAGE)]


def unpack_examples(data: bytes) -> list[bytes]:
    """The examples of one training-topic message (``pack_examples``; one example per message
    as earlier versions wrote them reads the same)."""
    return data.split(b"\n")


class Models:
    """The global models: what workers score with and what the trainer learns."""

    def __init__(self) -> None:
        self.sentiment = SentimentModel()
        self.posts = PostEngagementModel()
        self.creatives = CreativeClickModel()
        self.version = 0
        self.lineage = ""

    def versions(self) -> dict[str, int]:
        return {"models": self.version, "sentiment": self.sentiment.version,
                "post_engagement": self.posts.version, "creative_ctr": self.creatives.version}

    def report(self) -> dict[str, Any]:
        return {"version": self.version, "lineage": self.lineage,
                "sentiment": self.sentiment.quality.report(),
                "post_engagement": self.posts.report(),
                "creative_ctr": self.creatives.report()}


class Trainer:
    """Learns examples in order, each once."""

    def __init__(self, models: Models | None = None) -> None:
        self.models = models or Models()
        self.seen: OrderedDict[int, None] = OrderedDict()  # hashes of example ids
        self.duplicates = 0

    def learn(self, example: Example) -> bool:
        key = id_hash(example.example_id)
        if key in self.seen:
            self.duplicates += 1
            return False
        self.seen[key] = None
        if len(self.seen) > MAX_SEEN_EXAMPLES:
            self.seen.popitem(last=False)
        m = self.models
        if example.kind == "sentiment":
            m.sentiment.learn_features(example.x, example.y, example.predicted)
        elif example.kind == "post":
            m.posts.learn_one(example.x, example.y, example.predicted)
        else:
            clicks, impressions = example.y
            m.creatives.learn_one(example.x, clicks, impressions, example.predicted)
        m.version += 1
        m.lineage = hashlib.blake2b(f"{m.lineage}|{example.example_id}".encode(),
                                    digest_size=12).hexdigest()
        return True
