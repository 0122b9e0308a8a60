"""Every Prometheus metric of socialstream, in one place.

Names follow Prometheus conventions: ``socialstream_`` prefix, base units, counters end in
``_total``; labels are bounded enums (event type, reason code), never campaign or user ids.
"""

from __future__ import annotations

from prometheus_client import Counter, disable_created_metrics

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
