"""Ingest against a real Kafka broker: aiokafka and kcat producers, single events and batches,
keyed, unkeyed and mis-keyed; every valid event counted once, every invalid one dead-lettered."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agents.kafka import owner_partition
from streams.events import SocialEvent, decode_message
from tests.conftest import Deployment, by_label, read_to_end, scrape
from tests.eventgen import Payload, mixed

pytestmark = pytest.mark.integration


async def produce_aiokafka(bootstrap: str, topic: str, singles: list[Payload],
                           batched: list[Payload]) -> int:
    """Singles one per message (every 25th without a key); the rest as per-campaign batches of
    50 lines (every 7th batch under another campaign's key, one without a key)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                                linger_ms=5)
    await producer.start()
    messages = 0
    try:
        for i, p in enumerate(singles):
            single_key = None if i % 25 == 0 or p.campaign_id is None else p.campaign_id.encode()
            await producer.send(topic, p.raw, key=single_key)
            messages += 1
        groups: dict[str, list[bytes]] = defaultdict(list)
        for p in batched:
            groups[p.campaign_id or ""].append(p.raw)
        batches = [(cid, lines[i:i + 50]) for cid, lines in sorted(groups.items())
                   for i in range(0, len(lines), 50)]
        for n, (cid, lines) in enumerate(batches):
            key: bytes | None = cid.encode()
            if n % 7 == 3:
                key = b"camp-someone-else"
            elif n == 5:
                key = None
            await producer.send(topic, b"\n".join(lines), key=key)
            messages += 1
        await producer.flush()
    finally:
        await producer.stop()
    return messages


def produce_kcat(bootstrap: str, topic: str, payloads: list[Payload], tmp: Path) -> None:
    keyed, unkeyed = tmp / "keyed.txt", tmp / "unkeyed.txt"
    keyed.write_bytes(b"".join((p.campaign_id or "x").encode() + b"\t" + p.raw + b"\n"
                               for p in payloads[100:]))
    unkeyed.write_bytes(b"".join(p.raw + b"\n" for p in payloads[:100]))
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed (Debian package kcat; .ci/run installs it)"
    for extra, path in ((["-K", "\t"], keyed), ([], unkeyed)):
        subprocess.run([kcat, "-P", "-b", bootstrap, "-t", topic, *extra, "-l", str(path)],
                       check=True, timeout=120)


async def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records.extend(batch)
        # Anything beyond the expected count would be a duplicate: give it a moment to show.
        for batch in (await consumer.getmany(timeout_ms=1500)).values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records


def wait_for_total(port: int, total: int, timeout: float = 180) -> dict[Any, float]:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        done = sum(by_label(samples, "socialstream_events_total", "type").values()) + sum(
            by_label(samples, "socialstream_dead_letters_total", "reason").values())
        if done >= total or time.monotonic() > deadline:
            return samples
        time.sleep(0.5)


def expected_counts(payloads: Iterable[Payload]) -> tuple[Counter[str], Counter[str]]:
    types = Counter(p.type for p in payloads if p.type)
    reasons = Counter(p.reason.value for p in payloads if p.reason)
    return types, reasons


def test_every_valid_event_counted_once_every_invalid_one_dead_lettered(
        deployment: Deployment) -> None:
    created = deployment.cli("topics", "create")
    assert created.returncode == 0, created.stderr
    port = deployment.start_worker()

    payloads = list(mixed(11_000, seed=11))
    singles, batched, by_kcat = payloads[:5000], payloads[5000:10_000], payloads[10_000:]
    asyncio.run(produce_aiokafka(deployment.bootstrap, deployment.input_topic, singles, batched))
    produce_kcat(deployment.bootstrap, deployment.input_topic, by_kcat, deployment.tmp)

    types, reasons = expected_counts(payloads)
    assert sum(reasons.values()) > 400 and len(reasons) >= 15  # about 5%, of many kinds
    samples = wait_for_total(port, len(payloads))
    assert by_label(samples, "socialstream_events_total", "type") == types
    assert by_label(samples, "socialstream_dead_letters_total", "reason") == reasons

    # Every dead letter carries the original key and bytes, and points at its source message.
    inputs = asyncio.run(read_to_end(deployment.bootstrap, deployment.input_topic))
    source = {(r.partition, r.offset): r for r in inputs}
    expected_reason = {p.raw: p.reason.value for p in payloads if p.reason}
    dead = asyncio.run(read_all(deployment.bootstrap, deployment.dlq_topic,
                                sum(reasons.values())))
    assert len(dead) == sum(reasons.values())
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["source.topic"] == deployment.input_topic
        origin = source[(int(headers["source.partition"]), int(headers["source.offset"]))]
        line = int(headers.get("source.line", 0))
        original = origin.value if line == 0 else origin.value.split(b"\n")[line - 1]
        assert record.value == original
        assert record.key == origin.key
        assert headers["error.reason"] == expected_reason[record.value]
        assert headers["error.detail"]

    # Events that arrived away from their campaign's partition were forwarded there, once.
    partitions = deployment.partitions
    misplaced = 0
    for record in inputs:
        lines = [line.result for line in decode_message(record.value)]
        valid = [e for e in lines if isinstance(e, SocialEvent)]
        if any(k == "source.topic" for k, _ in record.headers):  # a forwarded copy
            assert {owner_partition(e.campaign_id, partitions) for e in valid} == {
                record.partition}
            assert {e.campaign_id.encode() for e in valid} == {record.key}
        else:
            misplaced += sum(owner_partition(e.campaign_id, partitions) != record.partition
                             for e in valid)
    assert misplaced > 500  # kcat's partitioner and the missing / wrong keys
    assert samples[("socialstream_rerouted_events_total", ())] == misplaced

    # Still running and consuming afterwards.
    extra = list(mixed(101, seed=99, invalid_share=0.0, start=50_000))
    produce_kcat(deployment.bootstrap, deployment.input_topic, extra, deployment.tmp)
    after = wait_for_total(port, len(payloads) + 101)
    assert sum(by_label(after, "socialstream_events_total", "type").values()) == \
        sum(types.values()) + 101
    assert all(proc.poll() is None for proc in deployment.workers)


def test_worker_refuses_an_input_topic_with_another_partition_count(
        deployment: Deployment) -> None:
    deployment.partitions = 2
    assert deployment.cli("topics", "create").returncode == 0
    result = deployment.cli("worker", SOCIALSTREAM_PARTITIONS="4")
    assert result.returncode == 2
    assert b"has 2 partitions but SOCIALSTREAM_PARTITIONS is 4" in result.stderr
    assert b"Traceback" not in result.stderr


def test_produce_reports_lines_that_are_not_json(deployment: Deployment) -> None:
    good = [p.raw for p in mixed(5, invalid_share=0.0)]
    data = b"\n".join([good[0], b"{not json", good[1], b"", good[2]]) + b"\n"
    result = deployment.cli("produce", "-", input=data)
    assert result.returncode == 1
    assert b"line 2: not JSON" in result.stderr
    assert b"sent 3 events" in result.stderr
    consumed = deployment.cli("consume", deployment.input_topic, "--from-beginning",
                              "--max", "10", "--timeout", "5")
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.count(b'"partition"') >= 1  # batched per campaign
    assert all(raw.split(b'"event_id":')[1][:14] in consumed.stdout for raw in good[:3])
