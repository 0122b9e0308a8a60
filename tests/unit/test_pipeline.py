"""The learning core without Kafka: state, late labels, outcomes learned when known, duplicates."""

from __future__ import annotations

import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.errors import StreamsError
from streams.events import SocialEvent, decode
from streams.models.engagement import DAY_MS, POST_HORIZON_MS
from streams.pipeline import TEXT_TTL_MS, Pipeline
from streams.records import Arm, CreativeStats
from streams.replay import replay
from streams.state import MAX_PENDING_TEXTS, CampaignState, CampaignStore, pack
from streams.training import Example, Trainer
from tests.eventgen import T0_MS, mixed


def ev(event_id: str, type_: str, ts: int = T0_MS, **fields: Any) -> SocialEvent:
    event = decode(orjson.dumps({"event_id": event_id, "ts": ts, "type": type_,
                                 "platform": "instagram", "campaign_id": "c", **fields}))
    assert isinstance(event, SocialEvent), event
    return event


def comment(event_id: str, text: str = "this is awful", ts: int = T0_MS, post_id: str = "p",
            **fields: Any) -> SocialEvent:
    return ev(event_id, "comment", ts, post_id=post_id, text=text, **fields)


def test_inline_label_becomes_an_example_with_the_prediction_made_first() -> None:
    pipeline = Pipeline()
    out = pipeline.process(comment("e1", "I hate this, terrible", sentiment="negative"))
    assert out.sentiment is not None and abs(sum(out.sentiment.values()) - 1) < 1e-9
    [example] = out.examples
    assert example.kind == "sentiment" and example.y == "negative"
    assert example.predicted == max(out.sentiment, key=out.sentiment.__getitem__)


def test_late_label_joins_its_text_and_is_learned() -> None:
    pipeline = Pipeline()
    first = pipeline.process(comment("e1", "love love love it"))
    assert first.examples == ()
    late = pipeline.process(ev("l1", "label", T0_MS + 3_600_000, target_event_id="e1",
                               sentiment="positive"))
    [example] = late.examples
    assert example.example_id == "sentiment:e1" and example.y == "positive"
    trainer = Trainer(pipeline.models)
    assert trainer.learn(example)
    assert pipeline.models.sentiment.version == 1


def test_unknown_and_expired_labels_are_counted_not_crashed_on() -> None:
    pipeline = Pipeline()
    pipeline.process(comment("e1"))
    pipeline.process(ev("l1", "label", target_event_id="nope", sentiment="neutral"))
    pipeline.process(ev("l2", "label", T0_MS + TEXT_TTL_MS + 1, target_event_id="e1",
                        sentiment="neutral"))
    assert pipeline.store.campaigns["c"].orphan_labels == 2


def test_pending_texts_are_bounded() -> None:
    pipeline = Pipeline()
    for i in range(MAX_PENDING_TEXTS * 3):
        pipeline.process(comment(f"e{i}", ts=T0_MS + i))
    assert len(pipeline.store.campaigns["c"].pending_texts) == MAX_PENDING_TEXTS


def test_post_engagement_is_learned_when_the_horizon_has_passed() -> None:
    pipeline = Pipeline()
    pipeline.process(ev("p1", "post", post_id="p1", text="new drop!", topics=["summer"]))
    for i in range(3):
        pipeline.process(ev(f"r{i}", "reaction", T0_MS + 1000 * i, post_id="p1"))
    pipeline.process(ev("r9", "reaction", T0_MS + POST_HORIZON_MS + 5, post_id="p1"))  # past it
    assert pipeline.store.campaigns["c"].pending_posts == {}
    closing = [o for o in [pipeline.process(ev("x", "share", T0_MS + 2 * DAY_MS, post_id="q"))]]
    assert closing[0].examples == ()  # already closed by the late reaction's event time


def test_post_outcome_counts_only_engagement_within_the_horizon() -> None:
    pipeline = Pipeline()
    pipeline.process(ev("p1", "post", post_id="p1", text="new drop!"))
    pipeline.process(ev("r1", "reaction", T0_MS + 10, post_id="p1"))
    pipeline.process(comment("c1", ts=T0_MS + 20, post_id="p1"))
    out = pipeline.process(ev("s1", "share", T0_MS + POST_HORIZON_MS + 1, post_id="p1"))
    [example] = out.examples
    assert example.kind == "post" and example.y == 2


def test_creative_window_learns_clicks_over_impressions() -> None:
    pipeline = Pipeline(window=10)
    examples: list[Example] = []
    pipeline.process(ev("c-early", "click", T0_MS, creative_id="cr"))  # no window open yet
    for i in range(10):
        examples += pipeline.process(ev(f"i{i}", "impression", T0_MS + i,
                                        creative_id="cr")).examples
        if i < 3:
            pipeline.process(ev(f"c{i}", "click", T0_MS + i, creative_id="cr"))
    [example] = examples
    assert example.kind == "creative" and example.y == [3, 10]
    stats = pipeline.store.campaigns["c"].creatives["cr"]
    assert (stats.impressions, stats.clicks) == (10, 4)


def test_same_position_or_same_event_id_is_applied_once() -> None:
    pipeline = Pipeline()
    assert pipeline.process(ev("a", "impression", creative_id="cr"), (5, 0)).applied
    assert not pipeline.process(ev("b", "impression", creative_id="cr"), (5, 0)).applied
    assert not pipeline.process(ev("a", "impression", creative_id="cr"), (6, 0)).applied
    assert pipeline.process(ev("b", "impression", creative_id="cr"), (6, 1)).applied
    state = pipeline.store.campaigns["c"]
    assert state.counts["impression"] == 2 and state.duplicates == 1


def test_snapshot_round_trip_and_restart_without_double_counting() -> None:
    events = [e for e in (decode(p.raw) for p in mixed(3000, seed=2))
              if isinstance(e, SocialEvent)]
    whole = Pipeline()
    for i, e in enumerate(events):
        whole.process(e, (i, 0))
    first = Pipeline()
    for i, e in enumerate(events[:1800]):
        first.process(e, (i, 0))
    restarted = Pipeline()
    restarted.store = CampaignStore.from_snapshot(first.store.snapshot())
    for i, e in enumerate(events):  # re-read from the start: at-least-once delivery
        restarted.process(e, (i, 0))
    assert {c: s.deterministic() for c, s in restarted.store.campaigns.items()} == \
        {c: s.deterministic() for c, s in whole.store.campaigns.items()}


def test_state_from_a_newer_worker_is_read_with_its_unknown_fields_ignored() -> None:
    state = CampaignState("c", counts=Counter({"click": 3}), applied=(7, 0))
    data = orjson.loads(state.to_json())
    data.update(schema_version=99, added_by_a_newer_worker={"x": 1})
    restored = CampaignState.from_bytes(pack(orjson.dumps(data)))
    assert restored.deterministic() == state.deterministic() and restored.applied == (7, 0)


def test_typed_records_restore_to_the_same_snapshot_bytes() -> None:
    """Creatives, windows, pending posts and texts and the policy memory are typed records in
    memory and positional lists in a snapshot: a restored snapshot writes the same bytes (key
    order, ints and floats included) and the records come back typed."""
    lines = [p.raw for p in mixed(6000, seed=11)]
    campaigns = replay(lines).pipeline.store.campaigns
    assert any(s.pending_posts and s.pending_texts and s.windows and s.memory.get("fatigue")
               for s in campaigns.values())
    for state in campaigns.values():
        restored = CampaignState.from_bytes(state.to_bytes())
        assert restored.to_json() == state.to_json()
        for stats in restored.creatives.values():
            assert isinstance(stats, CreativeStats) and isinstance(stats.spend, float)
        for arm in restored.memory.get("arms", {}).values():
            assert isinstance(arm, Arm)
    broken = orjson.loads(next(iter(campaigns.values())).to_json())
    broken["creatives"] = {"cr": [1, 2]}  # a record short of fields
    with pytest.raises(StreamsError, match="malformed record"):
        CampaignState.from_bytes(orjson.dumps(broken))


def test_state_written_by_the_previous_version_restores_and_goes_on() -> None:
    """tests/unit/data/campaign-state-v1.json was written by streams/state.py as it was before
    snapshots could evolve (simulate(2, 3, 3 h, seed 7) through the pipeline); allocation's
    arms have counted clicks since, as a third field that such a snapshot lacks (0.0)."""
    fixture = orjson.loads((Path(__file__).parent / "data" / "campaign-state-v1.json")
                           .read_bytes())
    for cid, snapshot in fixture["snapshots"].items():
        state = CampaignState.from_bytes(snapshot.encode())
        assert state.deterministic() == fixture["deterministic"][cid]
        upgraded = orjson.loads(snapshot)
        for arm in upgraded["policy"].get("arms", {}).values():
            assert len(arm) == 2
            arm.append(0.0)
        assert state.to_json() == orjson.dumps(upgraded)  # typed records, the same bytes
        assert 0 <= state.applied[0] < fixture["events"]
    store = CampaignStore(load=lambda cid: CampaignState.from_bytes(
        fixture["snapshots"][cid].encode()))
    pipeline = Pipeline()
    pipeline.store = store
    cid = next(iter(fixture["snapshots"]))
    before = CampaignState.from_bytes(fixture["snapshots"][cid].encode()).counts["click"]
    click = decode(orjson.dumps({"event_id": "after-upgrade", "ts": 1795687200000,
                                 "type": "click", "platform": "x", "campaign_id": cid,
                                 "creative_id": "cr-1"}))
    assert isinstance(click, SocialEvent)
    assert pipeline.process(click, (fixture["events"], 0)).applied
    assert store.campaigns[cid].counts["click"] == before + 1


def test_trainer_learns_each_example_once_and_tracks_lineage() -> None:
    a, b = Trainer(), Trainer()
    example = Example("sentiment:e1", "sentiment", {"t1": 1.0, "vader_neg": 0.5,
                                                    "vader_pos": 0.0, "vader_neu": 0.5,
                                                    "vader_compound": -0.6}, "negative",
                      "neutral")
    assert a.learn(example) and not a.learn(example)
    b.learn(Example.from_bytes(example.to_bytes()))
    assert a.models.lineage == b.models.lineage and a.models.version == 1


def test_replay_is_deterministic() -> None:
    lines = [p.raw for p in mixed(2000, seed=3)]
    one, two = replay(lines), replay(lines)
    assert one.report() == two.report()
    assert one.accepted + sum(one.rejected.values()) == 2000


def test_examples_leave_with_the_snapshots_in_the_order_they_were_made() -> None:
    store = CampaignStore()
    a, b = store.get("a"), store.get("b")
    store.emit(a, [b"a1"])
    store.emit(b, [b"b1"])
    store.emit(a, [b"a2"])
    snapshots, examples = store.take_dirty()
    assert examples == [b"a1", b"b1", b"a2"]  # one learning order, as in a replay
    assert CampaignState.from_bytes(snapshots["a"]).outbox == [b"a1", b"a2"]  # kept for a crash
    assert a.outbox == [] and store.take_dirty() == ({}, [])


def test_a_restored_snapshot_sends_its_outbox_again() -> None:
    durable = CampaignState("a", outbox=[b"maybe-lost"])
    store = CampaignStore(load=lambda cid: CampaignState.from_bytes(durable.to_bytes()))
    store.get("a")
    assert store.take_dirty()[1] == [b"maybe-lost"]  # the trainer drops it if it had arrived


def test_snapshots_are_compressed_and_plain_json_ones_still_restore() -> None:
    state = CampaignState("c", counts=Counter({"impression": 5}), applied=(9, 0))
    packed = state.to_bytes()
    assert packed[:1] != b"{" and zlib.decompress(packed) == state.to_json()
    for data in (packed, state.to_json()):  # the second: written before compression
        assert CampaignState.from_bytes(data).deterministic() == state.deterministic()
    with pytest.raises(StreamsError, match="neither JSON nor zlib"):
        CampaignState.from_bytes(b"\x00garbage")


def test_process_many_does_what_process_does_event_by_event() -> None:
    """The worker's unit path against the per-event one on a simulated day with re-sent and
    re-read events: the same states, examples, recommendations and counts."""
    from streams.simulator import HOUR_MS, simulate

    day, _ = simulate(campaigns=3, creatives=3, duration_ms=12 * HOUR_MS, seed=11)
    events = [e for e in (decode(orjson.dumps(raw)) for raw in day) if isinstance(e, SocialEvent)]
    resent = [e for i, e in enumerate(events) for e in ([e, e] if i % 500 == 0 else [e])]
    stream = [(e, (i, 0)) for i, e in enumerate(resent)]  # a producer's retries: new offsets
    stream += stream[1000:1100]  # a re-read after a restart: the same offsets again
    one, many = Pipeline(), Pipeline()
    applied: Counter[str] = Counter()
    examples: list[str] = []
    recommendations: list[dict[str, Any]] = []
    duplicates = 0
    for event, position in stream:
        out = one.process(event, position)
        duplicates += not out.applied
        applied[event.type] += out.applied
        examples += [x.example_id for x in out.examples]
        recommendations += [r.to_dict() for r in out.recommendations]
    got_examples: list[str] = []
    got_recommendations: list[dict[str, Any]] = []
    got_applied: Counter[str] = Counter()
    got_duplicates = 0
    for start in range(0, len(stream), 337):  # units across campaigns, of an odd size
        unit = stream[start:start + 337]
        done = many.process_many([e for e, _ in unit], [p for _, p in unit])
        assert not done.failed
        got_duplicates += done.duplicates
        got_applied.update(done.applied)
        got_examples += [x.example_id for _, xs in done.examples for x in xs]
        got_recommendations += [r.to_dict() for r in done.recommendations]
    assert recommendations and examples and duplicates == 100 + len(events[::500])
    assert (got_recommendations, got_examples, got_duplicates, got_applied) == \
        (recommendations, examples, duplicates, applied)
    assert {c: s.to_dict() for c, s in many.store.campaigns.items()} == \
        {c: s.to_dict() for c, s in one.store.campaigns.items()}
