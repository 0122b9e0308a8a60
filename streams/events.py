"""The input contract (DESIGN.md section 4): bytes in, a valid ``SocialEvent`` or a ``Rejected``.

``decode`` never raises on any input: every refusal is a value with a stable reason code (listed
in ``Reason`` and documented with examples in docs/events.md) so the ingest agent can dead-letter
it and carry on.  Two paths: msgspec decodes and type-checks a valid event straight into a
``SocialEvent`` in one C pass (about 1 us); anything it refuses, or that lacks a field its type
requires, takes the slow path (``orjson.loads`` and one check per field), which is the contract's
reference and finds the reason code.  The fast path only ever accepts what the slow one accepts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, NamedTuple, TypeAlias, cast

import msgspec
import orjson

SCHEMA_VERSION: Final = 1
MAX_EVENT_BYTES: Final = 256 * 1024
MAX_ID_CHARS: Final = 128
MAX_TEXT_CHARS: Final = 10_000
MAX_TOPICS: Final = 50
MAX_AMOUNT: Final = 1e12
MAX_COUNT: Final = 10_000_000
# Event time must fall in [2000-01-01, 2100-01-01): catches epoch seconds sent as milliseconds.
MIN_TS_MS: Final = 946_684_800_000
MAX_TS_MS: Final = 4_102_444_800_000

EVENT_TYPES: Final = frozenset(
    {"post", "comment", "reaction", "share", "impression", "click", "conversion", "spend", "label"})
PLATFORMS: Final = frozenset(
    {"facebook", "instagram", "x", "tiktok", "linkedin", "youtube", "other"})
SENTIMENTS: Final = frozenset({"positive", "neutral", "negative"})
# Delivery that ad platforms report as counts per creative and interval may come aggregated.
COUNTED_TYPES: Final = frozenset({"impression", "click", "conversion"})

# Fields that become required by the event's type, beyond the always-required ones.
REQUIRED_BY_TYPE: Final[dict[str, frozenset[str]]] = {
    "post": frozenset({"post_id", "text"}),
    "comment": frozenset({"post_id", "text"}),
    "reaction": frozenset({"post_id"}),
    "share": frozenset({"post_id"}),
    "impression": frozenset({"creative_id"}),
    "click": frozenset({"creative_id"}),
    "conversion": frozenset({"creative_id", "amount", "currency"}),
    "spend": frozenset({"creative_id", "amount", "currency"}),
    "label": frozenset({"target_event_id", "sentiment"}),
}


class Reason(StrEnum):
    """Stable reason codes of the dead-letter header ``error.reason``.  Never rename one."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NON_FINITE_NUMBER = "non_finite_number"
    NOT_AN_OBJECT = "not_an_object"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_STRING = "invalid_string"
    TEXT_TOO_LONG = "text_too_long"
    TOO_MANY_TOPICS = "too_many_topics"
    INVALID_TIMESTAMP = "invalid_timestamp"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_PLATFORM = "unknown_platform"
    UNKNOWN_SENTIMENT = "unknown_sentiment"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_CURRENCY = "invalid_currency"
    INVALID_COUNT = "invalid_count"
    # Not produced by decode: a later stage raised on a valid event (a bug, kept visible).
    INTERNAL_ERROR = "internal_error"


# What msgspec checks on the fast path; the slow path checks the same by hand (and names what
# failed).  Constraints apply to decoding only: constructing a SocialEvent checks nothing.
_Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
if TYPE_CHECKING:  # to the code, plain strings; to the decoder, the contract's closed sets
    _EventType: TypeAlias = str
    _Platform: TypeAlias = str
    _Sentiment: TypeAlias = str
else:
    _EventType = Literal[tuple(sorted(EVENT_TYPES))]
    _Platform = Literal[tuple(sorted(PLATFORMS))]
    _Sentiment = Literal[tuple(sorted(SENTIMENTS))]


class SocialEvent(msgspec.Struct, frozen=True, gc=False):
    """One validated social interaction.  ``ts_ms`` is event time in epoch milliseconds (UTC);
    on the wire it is ``ts`` (an RFC 3339 string takes the slow path).

    A msgspec Struct: as immutable and typed as a frozen dataclass, built by the decoder itself,
    and cheaper to construct than a NamedTuple; one is made per event."""

    event_id: _Ident
    if TYPE_CHECKING:
        ts_ms: int
    else:  # what the decoder reads: an RFC 3339 string becomes milliseconds in __post_init__
        ts_ms: Annotated[int, msgspec.Meta(ge=MIN_TS_MS, lt=MAX_TS_MS)] | str = \
            msgspec.field(name="ts")
    type: _EventType
    platform: _Platform
    campaign_id: _Ident
    creative_id: _Ident | None = None
    post_id: _Ident | None = None
    author_id: _Ident | None = None
    segment: _Ident | None = None
    lang: _Ident | None = None
    text: Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)] | None = None
    topics: Annotated[tuple[_Ident, ...], msgspec.Meta(max_length=MAX_TOPICS)] = ()
    amount: Annotated[float, msgspec.Meta(ge=0, le=MAX_AMOUNT)] | None = None
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] | None = None
    sentiment: _Sentiment | None = None
    target_event_id: _Ident | None = None
    schema_version: Literal[1] = SCHEMA_VERSION
    # How many impressions, clicks or conversions this event reports (a conversion's ``amount``
    # is their total value); 1 for any other type.
    count: Annotated[int, msgspec.Meta(ge=1, le=MAX_COUNT)] = 1

    def __post_init__(self) -> None:
        ts = cast(int | str, self.ts_ms)
        if type(ts) is str:  # decoding; any refusal here sends the event down the slow path
            try:
                ms = _rfc3339_ms(ts)
            except _Invalid as exc:
                raise ValueError(exc.detail) from None
            if not MIN_TS_MS <= ms < MAX_TS_MS:
                raise ValueError("ts out of range")
            msgspec.structs.force_setattr(self, "ts_ms", ms)


_fast_decode = msgspec.json.Decoder(SocialEvent).decode
_fast_decode_lines = msgspec.json.Decoder(SocialEvent).decode_lines
# Fields an event's type requires, which the decoder cannot know are required.
_NEEDED: Final = {t: tuple(sorted(f for f in needs if f != "text"))
                  for t, needs in REQUIRED_BY_TYPE.items()}
_NEEDS_TEXT: Final = frozenset(t for t, needs in REQUIRED_BY_TYPE.items() if "text" in needs)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why an input was refused: a stable ``reason`` code and a human ``detail``."""

    reason: Reason
    detail: str


class Line(NamedTuple):
    """One event of a message: its 1-based line number (0 for a single-event message), its
    original bytes, and what they decoded to.  A NamedTuple for the same reason as SocialEvent:
    one is built per event."""

    number: int
    raw: bytes
    result: SocialEvent | Rejected


class Batch(NamedTuple):
    """The lines of a batch message and the event each holds, in order."""

    raws: list[bytes]
    events: list[SocialEvent]

    def lines(self) -> list[Line]:
        return [Line(n, raw, event) for n, (raw, event)
                in enumerate(zip(self.raws, self.events, strict=True), start=1)]


class _Invalid(Exception):
    """Private control flow of the field checks; never leaves this module."""

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        self.detail = detail


def decode(data: bytes) -> SocialEvent | Rejected:
    """Decode and validate one event.  Never raises."""
    if not data or data.isspace():
        return Rejected(Reason.EMPTY, "message has no content")
    if len(data) > MAX_EVENT_BYTES:
        return Rejected(Reason.TOO_LARGE, f"event is {len(data)} bytes, limit {MAX_EVENT_BYTES}")
    try:
        event = _fast_decode(data)
    except (msgspec.MsgspecError, UnicodeDecodeError):
        return _decode_slowly(data)
    return event if _complete(event) else _decode_slowly(data)


def _complete(event: SocialEvent) -> bool:
    """What the decoder cannot check: the fields the event's type requires, and ``count`` on a
    type that counts."""
    if (event.type in _NEEDS_TEXT and not event.text) or \
            (event.count != 1 and event.type not in COUNTED_TYPES):
        return False
    for name in _NEEDED[event.type]:  # noqa: SIM110 (a loop: all() makes a generator per event)
        if getattr(event, name) is None:
            return False
    return True


def _decode_slowly(data: bytes) -> SocialEvent | Rejected:
    """The reference check of the contract: accepts exactly the valid events, and names the
    reason of any refusal."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return _json_rejection(data, str(exc))
    return validate(obj)


def decode_message(value: bytes | None) -> list[Line]:
    """Decode a Kafka message value: one JSON event, or newline-delimited events (a batch).

    A message that parses as one JSON value is a single event (line number 0), even when it is
    pretty-printed over several lines; otherwise each non-blank line is decoded on its own, so a bad
    line costs only itself.
    """
    return lines_of(value, decode_record(value))


def lines_of(value: bytes | None, decoded: SocialEvent | Batch | list[Line]) -> list[Line]:
    """What ``decode_record`` returned for ``value``, as ``decode_message`` returns it."""
    if isinstance(decoded, SocialEvent):
        return [Line(0, value or b"", decoded)]
    return decoded.lines() if isinstance(decoded, Batch) else decoded


def decode_record(value: bytes | None) -> SocialEvent | Batch | list[Line]:
    """``decode_message``, except that a valid single event comes as itself and a batch whose
    every line is a valid event stays a Batch: the worker's hot path takes its events without a
    Line per event (on single-event input the Line and its list cost half as much as the decode:
    0.4 of 0.8 us)."""
    if not value:
        return [Line(0, value or b"", Rejected(Reason.EMPTY, "message has no value"))]
    newline = value.find(b"\n")
    if newline < 0 or value[newline:].isspace():  # one line, maybe with a line end
        event = decode(value)
        return event if isinstance(event, SocialEvent) else [Line(0, value, event)]
    batch = _decode_batch(value)
    if batch is not None:
        return batch
    lines = [Line(n, raw, decode(raw)) for n, raw in _lines(value)]
    # Two JSON values cannot make one, so the message can be one value spread over lines only
    # when its first line is not JSON on its own; only then is the whole message parsed.
    first = lines[0].result if lines else None
    if (len(lines) == 1 or (isinstance(first, Rejected) and first.reason is Reason.INVALID_JSON)) \
            and len(value) <= MAX_EVENT_BYTES:
        try:
            return [Line(0, value, validate(orjson.loads(value)))]
        except orjson.JSONDecodeError:
            pass  # not a single JSON value: a batch
    return lines


def _decode_batch(value: bytes) -> Batch | None:
    """A batch message whose every line is a valid event: its lines and their events, decoded
    in one pass of msgspec (a third of the cost of a pass per line; line n is the n-th, 1-based).
    None when any line needs more: ``decode_message`` then decodes each on its own, and names
    what is wrong with a bad one.

    msgspec reads the values of a buffer wherever the newlines fall, and a message holds exactly
    one event per line only if it cuts no value and joins none: so every line must start with
    "{" and end with "}" (a value cut by a newline would end the line with ",", ":" or "[", or
    go on with a line that starts with "," or "}"), and there must be as many values as lines."""
    body = value[:-1] if value.endswith(b"\n") else value
    lines = body.count(b"\n") + 1
    if body[:1] != b"{" or body[-1:] != b"}" or body.count(b"}\n{") != lines - 1:
        return None
    pieces = body.split(b"\n")
    if len(body) > MAX_EVENT_BYTES and max(map(len, pieces)) > MAX_EVENT_BYTES:
        return None
    try:
        events = _fast_decode_lines(body)
    except (msgspec.MsgspecError, UnicodeDecodeError):
        return None
    if len(events) != lines or not all(map(_complete, events)):
        return None
    return Batch(pieces, events)


def _lines(value: bytes) -> Iterator[tuple[int, bytes]]:
    for n, raw in enumerate(value.split(b"\n"), start=1):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if line and not line.isspace():
            yield n, line


def validate(obj: Any) -> SocialEvent | Rejected:
    """Validate an already-parsed JSON value against the v1 contract.  Never raises."""
    if type(obj) is not dict:
        return Rejected(Reason.NOT_AN_OBJECT, f"expected a JSON object, got {_kind(obj)}")
    try:
        return _event(obj)
    except _Invalid as exc:
        return Rejected(exc.reason, exc.detail)


def _event(obj: dict[str, Any]) -> SocialEvent:
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version is not None and version != SCHEMA_VERSION:
        if type(version) is not int:
            raise _Invalid(Reason.WRONG_TYPE,
                           f"schema_version must be an integer, got {_kind(version)}")
        raise _Invalid(Reason.UNSUPPORTED_SCHEMA_VERSION,
                       f"schema_version {version} is not supported (this worker reads 1)")
    etype = _enum(obj, "type", EVENT_TYPES, Reason.UNKNOWN_TYPE)
    assert etype is not None
    needs = REQUIRED_BY_TYPE[etype]
    get = obj.get
    event_id = _ident(obj, "event_id", True)
    campaign_id = _ident(obj, "campaign_id", True)
    platform = _enum(obj, "platform", PLATFORMS, Reason.UNKNOWN_PLATFORM)
    assert event_id is not None and campaign_id is not None and platform is not None
    # Absent optional fields (the common case) cost one dict lookup, not a helper call.
    topics, amount, text, currency = get("topics"), get("amount"), get("text"), get("currency")
    sentiment = get("sentiment")
    return SocialEvent(
        event_id,
        _timestamp(get("ts")),
        etype,
        platform,
        campaign_id,
        _ident(obj, "creative_id", "creative_id" in needs),
        _ident(obj, "post_id", "post_id" in needs),
        None if get("author_id") is None else _ident(obj, "author_id", False),
        None if get("segment") is None else _ident(obj, "segment", False),
        None if get("lang") is None else _ident(obj, "lang", False),
        None if text is None and "text" not in needs else _text(text, "text" in needs),
        () if topics is None else _topics(topics),
        None if amount is None and "amount" not in needs else _amount(amount),
        None if currency is None and "currency" not in needs else _currency(currency, True),
        None if sentiment is None and "sentiment" not in needs
        else _enum(obj, "sentiment", SENTIMENTS, Reason.UNKNOWN_SENTIMENT),
        None if "target_event_id" not in needs and get("target_event_id") is None
        else _ident(obj, "target_event_id", "target_event_id" in needs),
        SCHEMA_VERSION,
        1 if get("count") is None else _count(get("count"), etype),
    )


def _ident(obj: dict[str, Any], name: str, required: bool) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise _Invalid(Reason.MISSING_FIELD, f"{name} is required")
        return None
    if type(value) is not str:
        raise _Invalid(Reason.WRONG_TYPE, f"{name} must be a string, got {_kind(value)}")
    if not 0 < len(value) <= MAX_ID_CHARS:
        raise _Invalid(Reason.INVALID_STRING,
                       f"{name} must have 1 to {MAX_ID_CHARS} characters, has {len(value)}")
    return value


def _enum(obj: dict[str, Any], name: str, allowed: frozenset[str], reason: Reason,
          required: bool = True) -> str | None:
    value = obj.get(name)
    if type(value) is str:
        if value in allowed:
            return value
        raise _Invalid(reason, f"{name} {value[:40]!r} is not one of {', '.join(sorted(allowed))}")
    if value is None:
        if required:
            raise _Invalid(Reason.MISSING_FIELD, f"{name} is required")
        return None
    raise _Invalid(Reason.WRONG_TYPE, f"{name} must be a string, got {_kind(value)}")


def _timestamp(value: Any) -> int:
    kind = type(value)
    if kind is int or kind is float:
        ms = int(value) if math.isfinite(value) else -1
        hint = " (epoch milliseconds expected, this looks like seconds)" \
            if 0 < ms < MIN_TS_MS // 1000 * 10 else ""
    elif kind is str:
        ms, hint = _rfc3339_ms(value), ""
    elif value is None:
        raise _Invalid(Reason.MISSING_FIELD, "ts is required")
    else:
        raise _Invalid(Reason.WRONG_TYPE,
                       f"ts must be an RFC 3339 string or epoch milliseconds, got {_kind(value)}")
    if not MIN_TS_MS <= ms < MAX_TS_MS:
        raise _Invalid(Reason.INVALID_TIMESTAMP,
                       f"ts {str(value)[:40]} is outside 2000-01-01..2100-01-01{hint}")
    return ms


def _rfc3339_ms(value: str) -> int:
    try:
        moment = datetime.fromisoformat(value) if 10 < len(value) <= 40 else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _Invalid(Reason.INVALID_TIMESTAMP,
                       f"ts {value[:40]!r} is not RFC 3339 with a time zone "
                       "(e.g. 2026-11-26T10:00:00Z)")
    return int(moment.timestamp() * 1000)


def _text(value: Any, required: bool) -> str | None:
    if value is None:
        if required:
            raise _Invalid(Reason.MISSING_FIELD, "text is required")
        return None
    if type(value) is not str:
        raise _Invalid(Reason.WRONG_TYPE, f"text must be a string, got {_kind(value)}")
    if len(value) > MAX_TEXT_CHARS:
        raise _Invalid(Reason.TEXT_TOO_LONG,
                       f"text has {len(value)} characters, limit {MAX_TEXT_CHARS}")
    if required and not value:
        raise _Invalid(Reason.INVALID_STRING, "text must not be empty")
    return value


def _topics(value: Any) -> tuple[str, ...]:
    if type(value) is not list:
        raise _Invalid(Reason.WRONG_TYPE, f"topics must be a list of strings, got {_kind(value)}")
    if len(value) > MAX_TOPICS:
        raise _Invalid(Reason.TOO_MANY_TOPICS, f"{len(value)} topics, limit {MAX_TOPICS}")
    for topic in value:
        if type(topic) is not str:
            raise _Invalid(Reason.WRONG_TYPE, f"each topic must be a string, got {_kind(topic)}")
        if not 0 < len(topic) <= MAX_ID_CHARS:
            raise _Invalid(Reason.INVALID_STRING,
                           f"each topic must have 1 to {MAX_ID_CHARS} characters")
    return tuple(value)


def _amount(value: Any) -> float:
    if value is None:
        raise _Invalid(Reason.MISSING_FIELD, "amount is required")
    kind = type(value)
    if kind is not float and kind is not int:
        raise _Invalid(Reason.WRONG_TYPE, f"amount must be a number, got {_kind(value)}")
    if not 0 <= value <= MAX_AMOUNT:  # also refuses NaN
        raise _Invalid(Reason.INVALID_AMOUNT, f"amount {value} is outside 0..{MAX_AMOUNT:.0e}")
    return float(value)


def _count(value: Any, etype: str) -> int:
    if type(value) is not int:
        raise _Invalid(Reason.WRONG_TYPE, f"count must be an integer, got {_kind(value)}")
    if not 1 <= value <= MAX_COUNT:
        raise _Invalid(Reason.INVALID_COUNT, f"count {value} is outside 1..{MAX_COUNT:,}")
    if value != 1 and etype not in COUNTED_TYPES:
        raise _Invalid(Reason.INVALID_COUNT,
                       f"count is for impression, click and conversion events, not {etype}")
    return value


def _currency(value: Any, required: bool) -> str | None:
    if value is None:
        if required:
            raise _Invalid(Reason.MISSING_FIELD, "currency is required")
        return None
    if type(value) is not str:
        raise _Invalid(Reason.WRONG_TYPE, f"currency must be a string, got {_kind(value)}")
    if not (len(value) == 3 and value.isascii() and value.isalpha() and value.isupper()):
        raise _Invalid(Reason.INVALID_CURRENCY,
                       f"currency {value[:20]!r} is not an ISO 4217 code such as EUR")
    return value


def _json_rejection(data: bytes, message: str) -> Rejected:
    lowered = message.lower()
    if "utf-8" in lowered or "surrogate" in lowered or "unicode" in lowered:
        return Rejected(Reason.INVALID_UTF8, message)
    if "infinity" in lowered or b"NaN" in data or b"Infinity" in data:
        return Rejected(Reason.NON_FINITE_NUMBER, f"NaN and Infinity are not JSON ({message})")
    return Rejected(Reason.INVALID_JSON, message)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value), "a value")
