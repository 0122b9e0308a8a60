"""``socialstream produce``: what counts as sent, the report, batching and resends (against a
fake producer; tests/integration/test_produce_restart.py runs it against a restarting broker)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
)

from agents import delivery, produce
from agents.cli import main
from agents.delivery import Batcher, ProduceReport, describe, numbered, ranges, resendable
from streams.config import Settings

Rule = Callable[[int, bytes | None, int], BaseException | str | None]


class FakeBroker:
    """What the fake producers wrote, and a rule that decides each message's fate:
    ``rule(producer number, key, n-th message of that key for that producer)`` returns None
    (acknowledged), an exception (the delivery fails with it), "raise:" + nothing (``send``
    itself raises KafkaTimeoutError) or "silent" (never answered)."""

    def __init__(self, rule: Rule | None = None) -> None:
        self.rule = rule or (lambda producer, key, n: None)
        self.log: list[tuple[bytes | None, bytes]] = []
        self.producers: list[FakeProducer] = []
        self.max_unanswered = 0


class FakeProducer:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker, self.number = broker, len(broker.producers) + 1
        broker.producers.append(self)
        self.sent: dict[bytes | None, int] = {}
        self.broken: set[bytes | None] = set()  # a failed batch spends the key's sequence
        self.unanswered: set[asyncio.Future[Any]] = set()
        self.stopped = False
        self._sender = self  # what Delivery._abort stops

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        n = self.sent[key] = self.sent.get(key, 0) + 1
        fate = self.broker.rule(self.number, key, n)
        if fate == "raise":
            raise KafkaTimeoutError()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.unanswered.add(future)
        self.broker.max_unanswered = max(self.broker.max_unanswered, len(self.unanswered))
        if fate != "silent":
            asyncio.get_running_loop().call_later(0.001, self._answer, future, key, value, fate)
        return future

    def _answer(self, future: asyncio.Future[Any], key: bytes | None, value: bytes,
                fate: BaseException | str | None) -> None:
        self.unanswered.discard(future)
        if key in self.broken:  # answers come in send order, as a partition's do
            fate = OutOfOrderSequenceNumber()
        if isinstance(fate, BaseException):
            self.broken.add(key)
            future.set_exception(fate)
        else:
            self.broker.log.append((key, value))
            future.set_result(None)


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    fake = FakeBroker()
    monkeypatch.setattr(delivery, "new_producer", lambda settings, **_: FakeProducer(fake))
    return fake


@pytest.fixture(autouse=True)
def no_unretrieved_exceptions(caplog: pytest.LogCaptureFixture) -> Any:
    """No "Future exception was never retrieved" (asyncio logs it when such a future is
    collected)."""
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        yield
        gc.collect()
    logged = caplog.get_records("call") + caplog.get_records("teardown")
    assert not [r for r in logged if "never retrieved" in r.getMessage()]


def events(n: int, keys: int = 3) -> list[tuple[bytes | None, bytes]]:
    return [(f"c-{i % keys}".encode(),
             orjson.dumps({"event_id": f"e{i}", "campaign_id": f"c-{i % keys}", "n": i}))
            for i in range(1, n + 1)]


def delivered(broker: FakeBroker) -> list[int]:
    """Event numbers on the fake topic, in write order."""
    return [orjson.loads(line)["n"] for _, value in broker.log for line in value.split(b"\n")]


async def run(items: list[tuple[bytes | None, bytes]], **kwargs: Any) -> ProduceReport:
    return await produce.produce_lines(Settings(), items, topic="t", progress=False, **kwargs)


# the report


def test_ranges_are_compressed_sorted_and_deduplicated() -> None:
    assert ranges([]) == ""
    assert ranges([5]) == "5"
    assert ranges([10, 9, 1, 2, 3, 7, 2]) == "1-3, 7, 9-10"
    assert ranges(range(12041, 44571)) == "12041-44570"
    assert numbered("lines", [3]) == "line 3"
    assert numbered("events", [4, 5, 6]) == "events 4-6"


def test_summary_on_success_and_on_failure() -> None:
    ok = ProduceReport(unit="lines", events=300, confirmed=300, messages=3)
    assert ok.ok
    assert ok.summary() == "sent 300 events in 3 messages, all acknowledged by Kafka"
    failed = ProduceReport(unit="lines", events=44570, confirmed=12040, messages=7000,
                           failed={"KafkaTimeoutError: no acknowledgement from Kafka for 120 s":
                                   list(range(12041, 44571))})
    assert not failed.ok
    assert failed.summary() == (
        "confirmed 12040 of 44570 events; not delivered: lines 12041-44570 "
        "(KafkaTimeoutError: no acknowledgement from Kafka for 120 s)")
    mixed = ProduceReport(unit="events", events=10, confirmed=7, resent=4, skipped=[2],
                          failed={"MessageSizeTooLargeError": [3], "E: x": [8, 9]})
    assert mixed.summary() == (
        "confirmed 7 of 10 events; not delivered: event 3 (MessageSizeTooLargeError); "
        "events 8-9 (E: x); 4 events were sent again after a failed attempt (a repeat is "
        "possible; the worker drops repeated event_ids); skipped 1 lines that are not JSON")


def test_errors_are_described_on_one_line_and_classified() -> None:
    assert describe(KafkaTimeoutError("slow\nmore")) == "KafkaTimeoutError: slow"
    assert describe(KafkaTimeoutError()) == "KafkaTimeoutError"
    assert describe(ValueError("x")) == "ValueError: x"
    assert describe(MessageSizeTooLargeError()) == "MessageSizeTooLargeError"
    assert describe(LeaderNotAvailableError("x")) == "LeaderNotAvailableError: x"
    assert describe(OutOfOrderSequenceNumber()) == (
        "OutOfOrderSequenceNumber: refused after an earlier message to its partition failed")
    for error in (KafkaTimeoutError(), OutOfOrderSequenceNumber(), LeaderNotAvailableError(),
                  KafkaConnectionError()):
        assert resendable(error), error
    for error in (MessageSizeTooLargeError(), KafkaError("bug"), ValueError()):
        assert not resendable(error), error


# batching


def test_batches_per_key_keep_input_order_and_flush_partial_batches() -> None:
    items = [(n, f"k{n % 2}".encode(), b"%d" % n) for n in range(1, 12)]
    batcher = Batcher(items, batch_size=3, flush_every=8)
    messages = list(batcher)
    assert [m.refs for m in messages] == [[1, 3, 5], [2, 4, 6], [7], [8], [9, 11], [10]]
    assert all(m.lines == [b"%d" % r for r in m.refs] for m in messages)
    assert [m.key for m in messages[:2]] == [b"k1", b"k0"]
    assert batcher.read == 11
    assert [m.refs for m in Batcher(items[:3], batch_size=1, flush_every=2)] == [[1], [2], [3]]
    seqs = [m.seq for m in messages]
    assert len(set(seqs)) == len(seqs)


# delivery


async def test_counts_only_acknowledged_events_with_a_bounded_window(
        broker: FakeBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "IN_FLIGHT_MESSAGES", 50)
    report = await run(events(2400), batch_size=4)
    assert report.ok and report.confirmed == report.events == 2400
    assert report.messages == len(broker.log) == 600
    assert sorted(delivered(broker)) == list(range(1, 2401))
    assert broker.max_unanswered <= 51
    assert broker.producers[0].stopped


async def test_a_failed_partition_is_resent_in_order_by_a_new_producer(
        broker: FakeBroker) -> None:
    # The first producer loses c-1's 3rd message; the broker then refuses every later c-1
    # message of that producer (OutOfOrderSequenceNumber). A second producer delivers them.
    def rule(p: int, key: bytes | None, n: int) -> BaseException | None:
        return LeaderNotAvailableError() if (p, key, n) == (1, b"c-1", 3) else None
    broker.rule = rule
    report = await run(events(300), batch_size=5)
    assert report.ok, report.summary()
    assert report.confirmed == 300 and report.resent > 0
    assert len(broker.producers) == 2
    order = delivered(broker)
    assert sorted(order) == list(range(1, 301))  # each once: nothing lost, nothing repeated
    for key in range(3):
        mine = [n for n in order if n % 3 == key]
        assert mine == sorted(mine), f"c-{key} out of order"
    assert "sent 300 events" in report.summary() and "sent again" in report.summary()


async def test_a_send_that_times_out_is_retried(broker: FakeBroker) -> None:
    broker.rule = lambda p, key, n: "raise" if (p, key, n) == (1, b"c-0", 2) else None
    report = await run(events(60), batch_size=1)
    assert report.ok, report.summary()
    assert sorted(delivered(broker)) == list(range(1, 61))
    c0 = [n for n in delivered(broker) if n % 3 == 0]
    assert c0 == sorted(c0)


async def test_what_never_succeeds_is_reported_by_event_number(broker: FakeBroker) -> None:
    # c-2's messages always time out; one c-0 message is too large (not worth resending).
    def rule(p: int, key: bytes | None, n: int) -> BaseException | None:
        error: BaseException | None = None
        if key == b"c-2":
            error = KafkaTimeoutError("expired")
        elif p == 1 and key == b"c-0" and n == 1:
            error = MessageSizeTooLargeError()
        return error
    broker.rule = rule
    report = await run(events(30), batch_size=1)
    assert not report.ok
    c2 = [n for n in range(1, 31) if n % 3 == 2]
    assert report.confirmed == 30 - len(c2) - 1
    # c-2's first message fails 3 times; the broker refuses its later ones each time after it
    assert report.failed == {
        "MessageSizeTooLargeError": [3], "KafkaTimeoutError: expired": [2],
        "OutOfOrderSequenceNumber: refused after an earlier message to its partition failed":
            c2[1:]}
    assert len(broker.producers) == delivery.ATTEMPTS
    assert report.summary().startswith(
        f"confirmed {report.confirmed} of 30 events; not delivered: event 3 "
        "(MessageSizeTooLargeError); event 2 (KafkaTimeoutError: expired); "
        "events 5, 8, 11, 14, 17, 20, 23, 26, 29 (OutOfOrderSequenceNumber: refused after")


async def test_no_answer_at_all_gives_up_and_names_every_line(
        broker: FakeBroker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(delivery, "DELIVERY_TIMEOUT_S", 0.3)
    monkeypatch.setattr(delivery, "IN_FLIGHT_MESSAGES", 10)
    broker.rule = lambda p, key, n: "silent" if n > 2 else None
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join([b"{oops", b""] + [v for _, v in events(40)]) + b"\n")
    report = await produce.produce_file(Settings(), str(path), topic="t", batch_size=1,
                                        progress=False)
    assert report.skipped == [1]
    assert report.confirmed == 6  # two per key, the rest never answered
    (error, lines), = report.failed.items()
    assert error == "KafkaTimeoutError: no acknowledgement from Kafka for 0 s"
    acknowledged = {orjson.loads(v)["n"] + 2 for _, v in broker.log}  # line = event + 2
    assert sorted(lines) == sorted(set(range(3, 43)) - acknowledged)
    assert broker.producers[0].stopped


def test_cli_exits_non_zero_with_the_lines_not_delivered(
        broker: FakeBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broker.rule = lambda p, key, n: MessageSizeTooLargeError() if key == b"c-1" else None
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(v for _, v in events(9)) + b"\n")
    assert main(["produce", str(path), "--no-batch"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == ("confirmed 6 of 9 events; not delivered: lines 1, 4, 7 "
                    "(MessageSizeTooLargeError); 3 events were sent again after a failed "
                    "attempt (a repeat is possible; the worker drops repeated event_ids)")
    broker.rule = lambda p, key, n: None
    assert main(["produce", str(path)]) == 0
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "sent 9 events in 3 messages, all acknowledged by Kafka")
