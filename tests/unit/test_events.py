"""The v1 input contract (DESIGN.md section 4): every refusal has its stable reason code."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.events import (
    EVENT_TYPES,
    MAX_EVENT_BYTES,
    Reason,
    Rejected,
    SocialEvent,
    _decode_slowly,
    decode,
    decode_message,
    decode_record,
    validate,
)

BASE: dict[str, Any] = {"event_id": "e-1", "ts": "2026-11-26T10:00:00Z", "type": "comment",
                        "platform": "instagram", "campaign_id": "c-1", "post_id": "p-1",
                        "text": "great product"}

VALID_BY_TYPE: dict[str, dict[str, Any]] = {
    "post": {**BASE, "type": "post", "topics": ["sale", "summer"], "segment": "18-24"},
    "comment": {**BASE, "sentiment": "positive", "author_id": "u-9", "lang": "en"},
    "reaction": {**BASE, "type": "reaction", "text": None},
    "share": {k: v for k, v in BASE.items() if k != "text"} | {"type": "share"},
    "impression": {**BASE, "type": "impression", "creative_id": "cr-1", "ts": 1795687200000},
    "click": {**BASE, "type": "click", "creative_id": "cr-1", "platform": "tiktok"},
    "conversion": {**BASE, "type": "conversion", "creative_id": "cr-1", "amount": 49.9,
                   "currency": "EUR"},
    "spend": {**BASE, "type": "spend", "creative_id": "cr-1", "amount": 0, "currency": "USD"},
    "label": {**BASE, "type": "label", "target_event_id": "e-0", "sentiment": "negative"},
}


def without(field: str, base: dict[str, Any] = BASE) -> bytes:
    return orjson.dumps({k: v for k, v in base.items() if k != field})


def with_(**changes: Any) -> bytes:
    return orjson.dumps({**BASE, **changes})


SPEND = VALID_BY_TYPE["spend"]
LABEL = VALID_BY_TYPE["label"]
IMPRESSION = VALID_BY_TYPE["impression"]

BAD: list[tuple[str, bytes, Reason]] = [
    ("empty message", b"", Reason.EMPTY),
    ("only whitespace", b"  \n ", Reason.EMPTY),
    ("oversized", b'{"a":"' + b"x" * MAX_EVENT_BYTES + b'"}', Reason.TOO_LARGE),
    ("truncated json", with_()[:-5], Reason.INVALID_JSON),
    ("not json at all", b"hello world", Reason.INVALID_JSON),
    ("trailing garbage", with_() + b"}", Reason.INVALID_JSON),
    ("single quotes", b"{'event_id': 'e'}", Reason.INVALID_JSON),
    ("invalid utf-8 bytes", with_(text="caf\u00e9").replace("é".encode(), b"\xe9"),
     Reason.INVALID_UTF8),
    ("lone surrogate escape", with_().replace(b'"great product"', b'"\\ud800 x"'),
     Reason.INVALID_UTF8),
    ("NaN literal", with_().replace(b'"c-1"', b'"c-1","amount":NaN'), Reason.NON_FINITE_NUMBER),
    ("Infinity literal", with_().replace(b'"c-1"', b'"c-1","amount":Infinity'),
     Reason.NON_FINITE_NUMBER),
    ("1e400", orjson.dumps(SPEND).replace(b'"amount":0', b'"amount":1e400'),
     Reason.NON_FINITE_NUMBER),
    ("array", b"[1,2,3]", Reason.NOT_AN_OBJECT),
    ("string", b'"event"', Reason.NOT_AN_OBJECT),
    ("number", b"42", Reason.NOT_AN_OBJECT),
    ("null", b"null", Reason.NOT_AN_OBJECT),
    ("schema version 2", with_(schema_version=2), Reason.UNSUPPORTED_SCHEMA_VERSION),
    ("schema version as string", with_(schema_version="1"), Reason.WRONG_TYPE),
    ("missing event_id", without("event_id"), Reason.MISSING_FIELD),
    ("missing ts", without("ts"), Reason.MISSING_FIELD),
    ("missing type", without("type"), Reason.MISSING_FIELD),
    ("missing platform", without("platform"), Reason.MISSING_FIELD),
    ("missing campaign_id", without("campaign_id"), Reason.MISSING_FIELD),
    ("null campaign_id", with_(campaign_id=None), Reason.MISSING_FIELD),
    ("comment without post_id", without("post_id"), Reason.MISSING_FIELD),
    ("comment without text", without("text"), Reason.MISSING_FIELD),
    ("impression without creative_id", without("creative_id", IMPRESSION), Reason.MISSING_FIELD),
    ("spend without amount", without("amount", SPEND), Reason.MISSING_FIELD),
    ("spend without currency", without("currency", SPEND), Reason.MISSING_FIELD),
    ("label without target", without("target_event_id", LABEL), Reason.MISSING_FIELD),
    ("label without sentiment", without("sentiment", LABEL), Reason.MISSING_FIELD),
    ("event_id as number", with_(event_id=12), Reason.WRONG_TYPE),
    ("campaign_id as object", with_(campaign_id={"id": 1}), Reason.WRONG_TYPE),
    ("type as list", with_(type=["post"]), Reason.WRONG_TYPE),
    ("text as number", with_(text=3), Reason.WRONG_TYPE),
    ("topics as string", with_(topics="sale"), Reason.WRONG_TYPE),
    ("topic as number", with_(topics=["ok", 7]), Reason.WRONG_TYPE),
    ("amount as string", orjson.dumps({**SPEND, "amount": "12.5"}), Reason.WRONG_TYPE),
    ("amount as boolean", orjson.dumps({**SPEND, "amount": True}), Reason.WRONG_TYPE),
    ("ts as boolean", with_(ts=True), Reason.WRONG_TYPE),
    ("ts as object", with_(ts={"ms": 1}), Reason.WRONG_TYPE),
    ("empty event_id", with_(event_id=""), Reason.INVALID_STRING),
    ("empty campaign_id", with_(campaign_id=""), Reason.INVALID_STRING),
    ("129-char event_id", with_(event_id="e" * 129), Reason.INVALID_STRING),
    ("empty text on a comment", with_(text=""), Reason.INVALID_STRING),
    ("empty topic", with_(topics=["ok", ""]), Reason.INVALID_STRING),
    ("10,001-char text", with_(text="x" * 10_001), Reason.TEXT_TOO_LONG),
    ("51 topics", with_(topics=[f"t{i}" for i in range(51)]), Reason.TOO_MANY_TOPICS),
    ("unknown type", with_(type="tweet"), Reason.UNKNOWN_TYPE),
    ("type in capitals", with_(type="POST"), Reason.UNKNOWN_TYPE),
    ("unknown platform", with_(platform="myspace"), Reason.UNKNOWN_PLATFORM),
    ("unknown sentiment", with_(sentiment="angry"), Reason.UNKNOWN_SENTIMENT),
    ("naive timestamp", with_(ts="2026-11-26T10:00:00"), Reason.INVALID_TIMESTAMP),
    ("date only", with_(ts="2026-11-26"), Reason.INVALID_TIMESTAMP),
    ("garbage timestamp", with_(ts="yesterday at noon"), Reason.INVALID_TIMESTAMP),
    ("epoch seconds", with_(ts=1795687200), Reason.INVALID_TIMESTAMP),
    ("negative epoch", with_(ts=-5), Reason.INVALID_TIMESTAMP),
    ("year 2200", with_(ts="2200-01-01T00:00:00Z"), Reason.INVALID_TIMESTAMP),
    ("huge integer ts", with_().replace(b'"2026-11-26T10:00:00Z"', b"9" * 30),
     Reason.INVALID_TIMESTAMP),
    ("huge integer amount", orjson.dumps(SPEND).replace(b'"amount":0', b'"amount":' + b"9" * 30),
     Reason.INVALID_AMOUNT),
    ("negative amount", orjson.dumps({**SPEND, "amount": -1}), Reason.INVALID_AMOUNT),
    ("lower-case currency", orjson.dumps({**SPEND, "currency": "eur"}), Reason.INVALID_CURRENCY),
    ("currency name", orjson.dumps({**SPEND, "currency": "euro"}), Reason.INVALID_CURRENCY),
    ("zero count", orjson.dumps({**IMPRESSION, "count": 0}), Reason.INVALID_COUNT),
    ("count of a label", orjson.dumps({**LABEL, "count": 2}), Reason.INVALID_COUNT),
    ("count as a string", orjson.dumps({**IMPRESSION, "count": "3"}), Reason.WRONG_TYPE),
    ("fractional count", orjson.dumps({**IMPRESSION, "count": 2.5}), Reason.WRONG_TYPE),
]


@pytest.mark.parametrize(("data", "reason"), [(d, r) for _, d, r in BAD],
                         ids=[name for name, _, _ in BAD])
def test_bad_input_is_rejected_with_its_reason(data: bytes, reason: Reason) -> None:
    result = decode(data)
    assert isinstance(result, Rejected), result
    assert result.reason is reason, result.detail
    assert result.detail


def test_the_table_covers_every_decode_reason() -> None:
    produced = {reason for _, _, reason in BAD}
    assert produced == set(Reason) - {Reason.INTERNAL_ERROR}


@pytest.mark.parametrize("etype", sorted(EVENT_TYPES))
def test_valid_example_of_every_type(etype: str) -> None:
    event = decode(orjson.dumps(VALID_BY_TYPE[etype]))
    assert isinstance(event, SocialEvent), event
    assert event.type == etype
    assert event.campaign_id == "c-1"
    assert event.ts_ms == 1795687200000


def test_fields_are_typed_and_extras_are_ignored() -> None:
    event = decode(orjson.dumps({**VALID_BY_TYPE["conversion"], "topics": ["a", "b"],
                                 "utm": {"source": "x"}, "schema_version": 1}))
    assert isinstance(event, SocialEvent)
    assert event.amount == 49.9 and isinstance(event.amount, float)
    assert event.topics == ("a", "b")
    assert not hasattr(event, "utm")


def test_rfc3339_offsets_and_fractions() -> None:
    a = decode(with_(ts="2026-11-26T11:00:00.250+01:00"))
    b = decode(with_(ts=1795687200250))
    assert isinstance(a, SocialEvent) and isinstance(b, SocialEvent)
    assert a.ts_ms == b.ts_ms == 1795687200250


def test_events_are_immutable() -> None:
    event = decode(with_())
    assert isinstance(event, SocialEvent)
    with pytest.raises(AttributeError):
        event.campaign_id = "other"  # type: ignore[misc]


def test_batch_keeps_each_line_and_its_bytes() -> None:
    good, bad = with_(event_id="a"), b'{"broken'
    lines = decode_message(good + b"\n" + bad + b"\r\n\n" + with_(event_id="b") + b"\n")
    assert [line.number for line in lines] == [1, 2, 4]
    assert [line.raw for line in lines] == [good, bad, with_(event_id="b")]
    assert isinstance(lines[0].result, SocialEvent)
    assert isinstance(lines[1].result, Rejected)
    assert lines[1].result.reason is Reason.INVALID_JSON
    assert isinstance(lines[2].result, SocialEvent) and lines[2].result.event_id == "b"


def test_single_event_even_when_pretty_printed() -> None:
    value = orjson.dumps(BASE, option=orjson.OPT_INDENT_2)
    [line] = decode_message(value)
    assert line.number == 0 and line.raw == value
    assert isinstance(line.result, SocialEvent)


@pytest.mark.parametrize("end", [b"", b"\n", b"\r\n", b" \n\t"])
def test_valid_single_event_message_comes_as_its_event(end: bytes) -> None:
    """The worker's hot path: no Line around a valid single event, with or without a line end;
    an invalid one still comes as a Line with its reason."""
    event = decode_record(with_(event_id="solo") + end)
    assert isinstance(event, SocialEvent) and event.event_id == "solo"
    refused = decode_record(b'{"event_id": "solo"}' + end)
    assert isinstance(refused, list)
    [line] = refused
    assert line.number == 0 and isinstance(line.result, Rejected)
    assert line.result.reason is Reason.MISSING_FIELD


def test_message_without_value_is_rejected() -> None:
    [line] = decode_message(None)
    assert isinstance(line.result, Rejected) and line.result.reason is Reason.EMPTY


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000))
def test_decode_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    assert isinstance(decode(data), SocialEvent | Rejected)
    assert all(isinstance(line.result, SocialEvent | Rejected) for line in decode_message(data))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10),
                                                                      children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(st.fixed_dictionaries({}, optional={k: json_values | st.just(v) for k, v in
                                           VALID_BY_TYPE["conversion"].items()}))
def test_validate_never_raises_on_arbitrary_json(obj: dict[str, Any]) -> None:
    assert isinstance(validate(obj), SocialEvent | Rejected)


@settings(deadline=None)
@given(json_values)
def test_validate_never_raises_on_any_json_value(value: Any) -> None:
    assert isinstance(validate(value), SocialEvent | Rejected)


# Values near each field's limits, of the wrong types, and the valid ones: where the fast
# (msgspec) and the reference (orjson + field checks) paths could disagree.
edge_values = (json_values | st.sampled_from([
    "", "x" * 128, "x" * 129, "é" * 128, "é" * 129, "EUR", "eur", "EURO", "ÉUR", -1, 0,
    1e12, 1e12 + 1, 1795687200000, 1795687200000.0, 946684800000, 946684799999,
    4102444800000, 4102444799999, True, None, [], ["a"] * 50, ["a"] * 51, [""], "x" * 10_001,
    "2026-11-26T10:00:00Z", 1, 2, "1", 10_000_000, 10_000_001]))


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(sorted(VALID_BY_TYPE)).flatmap(
    lambda t: st.fixed_dictionaries(
        {k: st.just(v) for k, v in VALID_BY_TYPE[t].items() if k == "type"},
        optional={k: edge_values | st.just(v)
                  for k, v in {**VALID_BY_TYPE[t], "schema_version": 1, "topics": ["a"],
                               "author_id": "u", "text": "hi", "count": 3}.items()
                  if k != "type"})))
def test_the_fast_path_decides_exactly_as_the_reference(obj: dict[str, Any]) -> None:
    data = json.dumps(obj).encode()  # not orjson: integers beyond 64 bits are input too
    assert decode(data) == _decode_slowly(data)


def test_delivery_may_come_as_counts() -> None:
    event = decode(orjson.dumps({**IMPRESSION, "count": 240}))
    assert isinstance(event, SocialEvent) and event.count == 240
    single = decode(orjson.dumps(IMPRESSION))
    assert isinstance(single, SocialEvent) and single.count == 1


# A batch's lines: valid events, edge cases of every kind, and lines that are not one JSON value
# (cut objects, two on one line, blank, CRLF, pretty-printed parts).
batch_lines = st.one_of(
    st.sampled_from(sorted(VALID_BY_TYPE)).map(lambda t: orjson.dumps(VALID_BY_TYPE[t])),
    st.sampled_from(sorted(VALID_BY_TYPE)).flatmap(
        lambda t: st.fixed_dictionaries(
            {"type": st.just(t)},
            optional={k: edge_values | st.just(v) for k, v in VALID_BY_TYPE[t].items()
                      if k != "type"})).map(lambda obj: json.dumps(obj).encode()),
    st.sampled_from([b"", b"   ", b"{", b"}", b'{"a": 1}, {"b": 2}', b"[1, 2]", b'"x"', b"{}",
                     orjson.dumps(BASE) + b" " + orjson.dumps(BASE), orjson.dumps(BASE) + b"\r",
                     orjson.dumps(BASE)[:20], orjson.dumps(BASE)[20:], b'{"event_id":',
                     b'"e-2"}', b"\xff{}"]))


@settings(max_examples=1000, deadline=None)
@given(st.lists(batch_lines, min_size=2, max_size=8), st.booleans())
def test_a_batch_decodes_as_its_lines_one_by_one(lines: list[bytes], trailing: bool) -> None:
    """The whole-batch fast path gives exactly what decoding each line on its own gives."""
    value = b"\n".join(lines) + (b"\n" if trailing else b"")
    with mock.patch("streams.events._decode_batch", return_value=None):
        expected = decode_message(value)
    assert decode_message(value) == expected
