"""The ingest agent's per-event decisions, without Kafka: the one place that catches per event.

Only the Kafka send is replaced (by a recorder); decoding, routing and the pipeline are real.
"""

from __future__ import annotations

from typing import Any, cast

import faust
import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from agents.app import Record, create_app
from agents.ingest import Ingest
from agents.kafka import owner_partition
from streams import metrics
from streams.config import Settings
from streams.events import Reason, SocialEvent
from streams.pipeline import Pipeline
from streams.policy import Recommendation
from streams.state import CampaignState, Position
from streams.training import Example

SETTINGS = Settings(partitions=4, input_topic="in", dlq_topic="in.dlq")


def event(campaign: str, event_id: str = "e-1", **extra: Any) -> bytes:
    return orjson.dumps({"event_id": event_id, "ts": 1795687200000, "type": "click",
                         "platform": "x", "campaign_id": campaign, "creative_id": "cr",
                         **extra})


class Recording(Ingest):
    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(create_app(SETTINGS), SETTINGS, pipeline)
        self.sent: list[dict[str, Any]] = []

    async def _send(self, topic: faust.TopicT, key: bytes | None, value: bytes,
                    **kwargs: Any) -> None:
        self.sent.append({"topic": topic.get_topic_name(), "key": key, "value": value, **kwargs})


class Failing(Pipeline):
    """A real pipeline whose processing of the event "boom" raises."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def _step(self, state: CampaignState, event: SocialEvent, position: Position,
              examples: list[Example]) -> tuple[dict[str, float] | None,
                                                list[Recommendation]] | None:
        self.seen.append(event.event_id)
        if event.event_id == "boom":
            raise ValueError("model exploded")
        return super()._step(state, event, position, examples)


def record(value: bytes, key: bytes | None, partition: int, offset: int = 42,
           headers: list[tuple[str, bytes]] | None = None) -> Record:
    return cast(Record, ConsumerRecord("in", partition, offset, 0, 0, key, value, None,
                                       0, len(value), tuple(headers or ())))


async def handle(ingest: Ingest, *records: Record) -> None:
    await ingest.handle(records[0].partition, records)


def home(campaign: str) -> int:
    return owner_partition(campaign, SETTINGS.partitions)


async def test_a_failing_stage_dead_letters_that_event_only() -> None:
    pipeline = Failing()
    ingest = Recording(pipeline)
    value = b"\n".join([event("c", "a"), event("c", "boom"), event("c", "b")])
    before = metrics.DEAD_LETTERS_BY_REASON[Reason.INTERNAL_ERROR]._value.get()
    await handle(ingest, record(value, b"c", home("c")))
    assert pipeline.seen == ["a", "boom", "b"]
    [dead] = ingest.sent
    headers = dict(dead["headers"])
    assert dead["topic"] == "in.dlq" and dead["key"] == b"c"
    assert dead["value"] == event("c", "boom")
    assert headers["error.reason"] == b"internal_error"
    assert b"ValueError: model exploded" in headers["error.detail"]
    assert headers["source.offset"] == b"42" and headers["source.line"] == b"2"
    assert metrics.DEAD_LETTERS_BY_REASON[Reason.INTERNAL_ERROR]._value.get() == before + 1


async def test_events_away_from_home_are_forwarded_grouped_by_campaign() -> None:
    ingest = Recording(Failing())
    mine = "c"
    others = [c for c in (f"x{i}" for i in range(50)) if home(c) != home(mine)][:2]
    value = b"\n".join([event(others[0], "1"), event(mine, "2"), event(others[1], "3"),
                        event(others[0], "4")])
    await handle(ingest, record(value, None, home(mine)))
    assert ingest.pipeline.seen == ["2"]  # type: ignore[attr-defined]
    forwarded = {s["key"]: s for s in ingest.sent}
    first = forwarded[others[0].encode()]
    assert first["topic"] == "in" and first["partition"] == home(others[0])
    assert first["value"] == event(others[0], "1") + b"\n" + event(others[0], "4")
    assert dict(first["headers"])["source.partition"] == str(home(mine)).encode()
    assert forwarded[others[1].encode()]["value"] == event(others[1], "3")


async def test_a_forwarded_event_keeps_its_first_address() -> None:
    ingest = Recording(Failing())
    first = [("source.topic", b"in"), ("source.partition", b"3"), ("source.offset", b"7")]
    await handle(ingest, record(event("c", "boom"), b"c", home("c"), offset=99, headers=first))
    [dead] = ingest.sent
    assert dict(dead["headers"])["source.offset"] == b"7"


@pytest.mark.parametrize("value", [b"", b"not json", b"[]", event("c")[:-2]])
async def test_invalid_input_is_dead_lettered_with_original_bytes(value: bytes) -> None:
    ingest = Recording(Failing())
    await handle(ingest, record(value, b"k", 1))
    [dead] = ingest.sent
    assert dead["value"] == value and dead["key"] == b"k"
    assert "source.line" not in dict(dead["headers"])


async def test_labels_are_counted_inline_joined_and_orphaned() -> None:
    ingest = Recording(Pipeline())
    before = {o: c._value.get() for o, c in metrics.LABEL_OUTCOMES.items()}
    campaign = "c-labels"
    text = {"type": "comment", "post_id": "p", "text": "love it", "creative_id": None}
    lines = [event(campaign, "t1", **text, sentiment="positive"),
             event(campaign, "t2", **text),
             event(campaign, "l1", type="label", target_event_id="t2", sentiment="negative"),
             event(campaign, "l2", type="label", target_event_id="unknown", sentiment="neutral")]
    await handle(ingest, record(b"\n".join(lines), campaign.encode(), home(campaign)))
    after = {o: c._value.get() - before[o] for o, c in metrics.LABEL_OUTCOMES.items()}
    assert after == {"inline": 1, "joined": 1, "orphaned": 1}, ingest.sent
