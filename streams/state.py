"""Per-campaign state: counters, creatives, pending predictions, and what has been applied.

A campaign's state and the position of the last source event applied to it travel together in one
snapshot record, so restoring a snapshot and re-reading the partition from any earlier offset never
applies an event twice (at-least-once delivery made effectively-once).  Producer retries that
re-send an event under a new offset are caught by a bounded set of recent event-id hashes.
Everything is bounded: a long-running campaign keeps a fixed-size state.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any, Final

import msgspec
import orjson
from msgspec.structs import astuple

from streams.errors import StreamsError
from streams.records import (
    CreativeStats,
    ImpressionWindow,
    PendingPost,
    PendingText,
    PolicyMemory,
)

SCHEMA_VERSION: Final = 1
RECENT_IDS: Final = 128
MAX_PENDING_TEXTS: Final = 64
MAX_PENDING_POSTS: Final = 16
MAX_CREATIVES: Final = 32
NO_POSITION: Final = (-1, -1)
log = logging.getLogger(__name__)

Position = tuple[int, int]  # (source offset, line in the message; 0 for a single event)


ID_HASH_BYTES: Final = 6  # 48 bits: a false "duplicate" once in ~10^12 events per campaign


def id_hash(event_id: str) -> int:
    """Stable 48-bit hash of an event id (Python's hash() changes between processes)."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=ID_HASH_BYTES).digest()
    return int.from_bytes(digest, "big")


def _pack(ids: Iterable[int]) -> str:
    return base64.b64encode(b"".join(i.to_bytes(ID_HASH_BYTES, "big") for i in ids)).decode()


def _unpack(text: str) -> list[int]:
    raw = base64.b64decode(text)
    return [int.from_bytes(raw[i:i + ID_HASH_BYTES], "big")
            for i in range(0, len(raw), ID_HASH_BYTES)]


@dataclass(slots=True)
class CampaignState:
    """Everything socialstream knows about one campaign, owned by one partition."""

    campaign_id: str
    applied: Position = NO_POSITION
    last_ts_ms: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    spend: float = 0.0
    revenue: float = 0.0
    # The records below are streams/records.py's: named and typed here, positional lists in a
    # snapshot (as they always were).
    creatives: dict[str, CreativeStats] = field(default_factory=dict)
    # event_id -> a scored text waiting for a late label
    pending_texts: dict[str, PendingText] = field(default_factory=dict)
    # post_id -> a post within its horizon
    pending_posts: dict[str, PendingPost] = field(default_factory=dict)
    # creative_id -> its open impression window
    windows: dict[str, ImpressionWindow] = field(default_factory=dict)
    # Examples emitted since the last snapshot (an outbox): a restored snapshot re-sends them, so
    # an example whose send was lost in a crash is not lost with it (the trainer drops repeats).
    outbox: list[bytes] = field(default_factory=list)
    recent_ids: deque[int] = field(default_factory=deque)
    orphan_labels: int = 0
    duplicates: int = 0
    # Model-derived aggregates (they depend on the model version that scored each text).
    sentiment: Counter[str] = field(default_factory=Counter)
    negative_comments: list[str] = field(default_factory=list)
    # What the policy remembers (streams/policy/): posteriors, fatigue statistics, cooldowns;
    # "policy" in a snapshot.
    memory: PolicyMemory = field(default_factory=PolicyMemory)
    _recent: set[int] = field(default_factory=set, repr=False, compare=False)
    # Event time at which the first pending post's horizon ends (the pipeline keeps it; 0:
    # unknown, look): most events then skip the scan for due posts.  Not in a snapshot.
    posts_due_ms: int = field(default=0, init=False, repr=False, compare=False)

    def seen(self, event_hash: int) -> bool:
        if not self._recent and self.recent_ids:
            self._recent.update(self.recent_ids)
        return event_hash in self._recent

    def remember(self, event_hash: int) -> None:
        recent = self.recent_ids
        if len(recent) >= RECENT_IDS:
            self._recent.discard(recent.popleft())
        recent.append(event_hash)
        self._recent.add(event_hash)

    def deterministic(self) -> dict[str, Any]:
        """The fields that depend only on the input, not on model versions or on where the input
        was read from (offsets): what an offline replay must reproduce exactly."""
        data = self.to_dict()
        for key in ("applied", "sentiment", "negative_comments", "pending_texts",
                    "pending_posts", "windows", "outbox", "policy"):
            data.pop(key)
        return data

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as plain values (records as their positional lists)."""
        data: dict[str, Any] = msgspec.to_builtins(self._fields())
        return data

    def _fields(self) -> dict[str, Any]:
        """The snapshot's fields, records as they are (``to_json`` writes them as lists)."""
        return {"campaign_id": self.campaign_id, "applied": list(self.applied),
                "last_ts_ms": self.last_ts_ms, "counts": dict(self.counts),
                "spend": self.spend, "revenue": self.revenue, "creatives": self.creatives,
                "pending_texts": self.pending_texts, "pending_posts": self.pending_posts,
                "windows": self.windows, "recent_ids": _pack(self.recent_ids),
                "outbox": [base64.b64encode(e).decode() for e in self.outbox],
                "orphan_labels": self.orphan_labels, "duplicates": self.duplicates,
                "sentiment": dict(self.sentiment), "negative_comments": self.negative_comments,
                "policy": self.memory}

    def to_json(self) -> bytes:
        """The snapshot as JSON (``pack`` makes it what the changelog holds)."""
        return dumps({"schema_version": SCHEMA_VERSION, **self._fields()})

    def to_bytes(self) -> bytes:
        return pack(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> CampaignState:
        """A snapshot as ``to_bytes`` writes it, or as plain JSON (what workers wrote before
        snapshots were compressed, and what ``to_json`` gives)."""
        if data[:1] != b"{":
            try:
                data = zlib.decompress(data)
            except zlib.error as exc:
                raise StreamsError(f"campaign snapshot is neither JSON nor zlib: {exc}") from None
        return cls.from_dict(orjson.loads(data))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CampaignState:
        """Restore a snapshot of any schema version this module knows: older ones are migrated
        step by step; fields this version does not know (a newer worker's, during a rolling
        upgrade) are ignored; fields a snapshot lacks take their defaults."""
        raw = migrate(dict(raw))
        known = {k: v for k, v in raw.items() if k in STATE_FIELDS}
        known["applied"] = tuple(raw.get("applied", NO_POSITION))
        known["recent_ids"] = deque(_unpack(raw.get("recent_ids", "")))
        known["outbox"] = [base64.b64decode(e) for e in raw.get("outbox", ())]
        known["counts"] = Counter(raw.get("counts", {}))
        known["sentiment"] = Counter(raw.get("sentiment", {}))
        try:
            for name, kind in RECORDS.items():
                if name in raw:
                    known[name] = msgspec.convert(raw[name], kind)
            # keys in the snapshot's order (a snapshot of it writes the same bytes again);
            # keys this version does not know are dropped
            known["memory"] = msgspec.convert(raw.get("policy", {}), PolicyMemory)
        except msgspec.ValidationError as exc:
            raise StreamsError(f"campaign snapshot of {raw.get('campaign_id')!r} has a "
                               f"malformed record: {exc}") from None
        return cls(**known)


def dumps(snapshot: Any) -> bytes:
    """JSON of a snapshot holding records (streams/records.py): each as its positional list.

    orjson, with each record handed back as the tuple of its fields: a third faster than
    copying them all into lists first (``msgspec.to_builtins``), and not msgspec's own encoder,
    which writes some floats differently (``1e16``, not ``1e+16``): snapshots stay byte for byte
    what they were."""
    return orjson.dumps(snapshot, default=astuple)


# zlib level 1: a day-old campaign's 14 KB of JSON become about 4.8 KB in about 0.1 ms (level 6:
# 4.3 KB in 0.2 ms); its token lists, ids and repeated keys are what compresses.
SNAPSHOT_COMPRESSION: Final = 1


def pack(snapshot_json: bytes) -> bytes:
    """A campaign snapshot as the changelog holds it."""
    return zlib.compress(snapshot_json, SNAPSHOT_COMPRESSION)


STATE_FIELDS: Final = frozenset(f.name for f in fields(CampaignState) if f.init
                                and not f.name.startswith("_") and f.name != "memory")
# The fields made of records, and the type each restores to.
RECORDS: Final[dict[str, Any]] = {"creatives": dict[str, CreativeStats],
                                  "pending_texts": dict[str, PendingText],
                                  "pending_posts": dict[str, PendingPost],
                                  "windows": dict[str, ImpressionWindow]}
# MIGRATIONS[v] turns a snapshot of schema version v into one of version v + 1.
MIGRATIONS: Final[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {}


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """A campaign snapshot brought to SCHEMA_VERSION.  A newer version is read as it is (its
    unknown fields are ignored): during a rolling upgrade an older worker may own a campaign
    that a newer one wrote, and refusing it would dead-letter the campaign's events."""
    version = raw.pop("schema_version", 1)
    if not isinstance(version, int) or version < 1:
        raise StreamsError(f"campaign snapshot has an invalid schema version {version!r}")
    while version < SCHEMA_VERSION:
        raw = MIGRATIONS[version](raw)
        version += 1
    if version > SCHEMA_VERSION:
        log.warning("campaign %s: snapshot of schema version %s read by a worker of version %s "
                    "(fields it does not know are ignored)", raw.get("campaign_id"), version,
                    SCHEMA_VERSION)
    return raw


class CampaignStore:
    """The campaigns of one worker (or replay), with the set changed since the last snapshot.

    ``load`` finds a campaign's durable snapshot (a worker: its recovered changelog) the first
    time the campaign is touched."""

    def __init__(self, load: Callable[[str], CampaignState | None] | None = None) -> None:
        self.campaigns: dict[str, CampaignState] = {}
        self.dirty: set[str] = set()
        self.load = load
        self.suspect: set[str] = set()
        self.outgoing: list[bytes] = []  # every outbox's examples, in the order they were made

    def emit(self, state: CampaignState, examples: list[bytes]) -> None:
        """Examples made by an event of ``state``: sent with its next snapshot."""
        state.outbox.extend(examples)
        self.outgoing.extend(examples)

    def get(self, campaign_id: str) -> CampaignState:
        state = self.campaigns.get(campaign_id)
        if state is None or campaign_id in self.suspect:
            self.suspect.discard(campaign_id)
            loaded = self.load(campaign_id) if self.load is not None else None
            if state is None or (loaded is not None and loaded.applied > state.applied):
                state = loaded or CampaignState(campaign_id)
                self.campaigns[campaign_id] = state
                self.outgoing.extend(state.outbox)  # maybe never delivered: again (deduped)
        self.dirty.add(campaign_id)
        return state

    def suspect_all(self) -> None:
        """After a rebalance: check each campaign against its durable snapshot when next
        touched, in case another owner advanced it meanwhile."""
        self.suspect.update(self.campaigns)

    def take_dirty(self) -> tuple[dict[str, bytes], list[bytes]]:
        """Snapshots (JSON) of the campaigns changed since the last call, and the examples to
        send with them in the order they were made (one learning order, as in a replay).  The
        outboxes are emptied; each snapshot keeps a copy of its own, so a worker restored from
        it sends them again if the send was lost."""
        snapshots: dict[str, bytes] = {}
        for cid in self.dirty:
            state = self.campaigns[cid]
            snapshots[cid] = state.to_json()  # packed by the writer, off the event loop
            state.outbox.clear()
        self.dirty.clear()
        examples, self.outgoing = self.outgoing, []
        return snapshots, examples

    def snapshot(self) -> bytes:
        """Every campaign in one blob (replay, benchmarks)."""
        return dumps({"schema_version": SCHEMA_VERSION,
                      "campaigns": [s._fields() for s in self.campaigns.values()]})

    @classmethod
    def from_snapshot(cls, data: bytes) -> CampaignStore:
        raw = orjson.loads(data)
        version = raw.get("schema_version", 1)
        store = cls()
        for item in raw["campaigns"]:
            state = CampaignState.from_dict({"schema_version": version, **item})
            store.campaigns[state.campaign_id] = state
        return store
