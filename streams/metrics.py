"""Every Prometheus metric of socialstream, in one place.

Names follow Prometheus conventions: ``socialstream_`` prefix, base units, counters end in
``_total``; labels are bounded enums (event type, reason code), never campaign or user ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from streams.events import EVENT_TYPES, Reason

# *_created series double the scrape for no dashboard use.
disable_created_metrics()  # type: ignore[no-untyped-call]

EVENTS = Counter(
    "socialstream_events",
    "Valid events applied by the pipeline, by event type.",
    ["type"],
)
DEAD_LETTERS = Counter(
    "socialstream_dead_letters",
    "Events sent to the dead-letter topic, by stable reason code.",
    ["reason"],
)
MESSAGES = Counter(
    "socialstream_messages",
    "Kafka messages read from the input topic (one message may carry a batch of events).",
)
REROUTED = Counter(
    "socialstream_rerouted_events",
    "Valid events forwarded to the partition that owns their campaign (no key, another "
    "campaign's key, or a producer with another partitioner).",
)

# Children bound once: a labels() lookup per event would cost more than the increment itself.
EVENTS_BY_TYPE = {t: EVENTS.labels(type=t) for t in sorted(EVENT_TYPES)}
DEAD_LETTERS_BY_REASON = {r: DEAD_LETTERS.labels(reason=r.value) for r in Reason}
DUPLICATES = Counter(
    "socialstream_duplicate_events",
    "Events not applied because they were applied before (redelivery or a producer retry).",
)
TRAINING_EXAMPLES = Counter(
    "socialstream_training_examples",
    "Labelled examples sent to the trainer (sentiment labels, post and creative outcomes).",
    ["kind"],
)
MODEL_VERSION = Gauge(
    "socialstream_model_version",
    "Examples learned by the model this worker scores with (its version).",
    ["model"],
)
MODEL_QUALITY = Gauge(
    "socialstream_model_quality",
    "Progressive (test-then-train) quality of the model this worker scores with.",
    ["model", "metric"],
)
SNAPSHOT_BYTES = Counter(
    "socialstream_state_snapshot_bytes",
    "Bytes of campaign-state snapshots written before offset commits.",
)
SNAPSHOT_SECONDS = Histogram(
    "socialstream_state_snapshot_seconds",
    "Time to write one round of campaign-state snapshots before a commit (serialise, send, "
    "broker acknowledgment).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
REREADS = Counter(
    "socialstream_consumer_rereads",
    "Times a partition was read again from a gap: Kafka messages the client dropped around a "
    "rebalance, re-read instead of lost.  Occasional is normal; steady growth is not.",
)
