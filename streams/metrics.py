"""Every Prometheus metric of socialstream, in one place.

Names follow Prometheus conventions: ``socialstream_`` prefix, base units, counters end in
``_total``; labels are bounded enums (event type, reason code), never campaign or user ids.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram, Info, disable_created_metrics

from streams.events import EVENT_TYPES, Reason
from streams.policy import ACTIONS, REASONS

# *_created series double the scrape for no dashboard use.
disable_created_metrics()  # type: ignore[no-untyped-call]

EVENTS = Counter(
    "socialstream_events",
    "Valid events applied by this worker process, by event type.  Counted per process: events a "
    "worker applied after its last commit are applied again by whoever reads them next (kill, "
    "rebalance), and both count them, while campaign state holds them once; so the sum over "
    "workers can exceed the events produced by the re-read ones.",
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
TRAINING_EXAMPLES_BY_KIND = {k: TRAINING_EXAMPLES.labels(kind=k)
                             for k in ("sentiment", "post", "creative")}
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
OFFSET_GAPS = Counter(
    "socialstream_offset_gaps",
    "Gaps in input offsets that the log confirmed hold nothing to read (transaction markers, "
    "aborted transactions, compaction, a log start moved by retention or DeleteRecords): "
    "nothing lost, nothing re-read.",
)
MODEL_SNAPSHOTS_REFUSED = Counter(
    "socialstream_model_snapshots_refused",
    "Model snapshots read from the model topic and refused (oversized, unreadable, unknown "
    "version); the worker keeps scoring with the models it has.",
    ["reason"],
)
OUTPUT_FAILURES = Counter(
    "socialstream_output_failures",
    "Outputs (recommendations, dead letters, forwarded events, snapshots) the broker did not "
    "acknowledge after the producer's retries; the worker stops before committing past them.",
)

# Latency and lag.  Stages are fixed names, so the label stays bounded.
STAGE_SECONDS = Histogram(
    "socialstream_stage_seconds",
    "Time spent per Kafka message in each stage: decode (bytes to validated events), pipeline "
    "(state, features, scoring, policy), outputs (dead letters, forwards and recommendations "
    "handed to the producer).",
    ["stage"],
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)
STAGE = {s: STAGE_SECONDS.labels(stage=s) for s in ("decode", "pipeline", "outputs")}
PROCESSING_LATENCY = Histogram(
    "socialstream_processing_latency_seconds",
    "From the moment Kafka received a message (its log-append or create timestamp) to the end of "
    "its processing by the worker: queueing in Kafka and in the worker included.",
    # Fine from 1 to 100 ms, where the latency target is read, so a p99 is not interpolated
    # across a 25-50-100 ms gap.
    buckets=(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06,
             0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
EVENT_TIME_LAG = Gauge(
    "socialstream_event_time_lag_seconds",
    "Wall-clock time minus the event time of the latest event applied by this worker.",
)
LAST_PROCESSED = Gauge(
    "socialstream_last_processed_timestamp_seconds",
    "Wall-clock time (Unix seconds) at which this worker last finished handling input: time() "
    "minus it is how long it has had nothing to do, or been stuck.",
)
CONSUMER_LAG = Gauge(
    "socialstream_consumer_lag_messages",
    "Messages in the input partition not yet processed by this worker (high watermark minus the "
    "next offset to process), per owned partition.",
    ["partition"],
)
LABELS = Counter(
    "socialstream_labels",
    "Sentiment labels received: inline on a text, joined to an earlier text, or orphaned (its "
    "text unknown or older than the TTL).",
    ["outcome"],
)
LABEL_OUTCOMES = {o: LABELS.labels(outcome=o) for o in ("inline", "joined", "orphaned")}
ACTIVE_CAMPAIGNS = Gauge(
    "socialstream_active_campaigns",
    "Campaigns held in this worker's memory (the campaigns of its partitions seen so far).",
)
RECOMMENDATIONS_TOTAL = Counter(
    "socialstream_recommendations",
    "Recommendations published, by action and reason code.",
    ["action", "reason"],
)
RECOMMENDATIONS = {(a, r): RECOMMENDATIONS_TOTAL.labels(action=a, reason=r)
                   for a, codes in REASONS.items() for r in codes}
RECOMMENDATION_CONFIDENCE = Histogram(
    "socialstream_recommendation_confidence",
    "Confidence (0..1) of the recommendations published, by action.",
    ["action"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
)
CONFIDENCE = {a: RECOMMENDATION_CONFIDENCE.labels(action=a) for a in ACTIONS}
READY = Gauge(
    "socialstream_ready",
    "1 when this worker has recovered its state, owns partitions of a topic that matches its "
    "configuration, and makes progress on every partition with input waiting (as /readyz).",
)
UNREADY = Gauge(
    "socialstream_unready",
    "1 for each reason this worker is not ready now: recovering, unassigned, stalled (input "
    "waits and the next offset has not moved), partitions_mismatch (the input topic's partition "
    "count differs from SOCIALSTREAM_PARTITIONS), broker_unreachable.",
    ["reason"],
)
BUILD_INFO = Info("socialstream_build", "Version of socialstream and of its core libraries.")


def observe_many(histogram: Histogram, values: Iterable[float]) -> None:
    """``histogram.observe(v)`` for every v, one increment per bucket: observe takes a lock per
    call and walks the bucket bounds in Python, about a microsecond an observation, a tenth of
    an event's whole cost on single-event input, where every record is observed.  Reads the
    histogram's own bounds, buckets and sum (prometheus_client internals since 0.4; a unit test
    holds the result to observe's)."""
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    total = 0.0
    for value in values:
        counts[bisect_left(bounds, value)] += 1
        total += value
    if not any(counts):
        return
    histogram._sum.inc(total)
    for bucket, n in zip(histogram._buckets, counts, strict=True):
        if n:
            bucket.inc(n)
