"""Traffic as real producers write it, against a real broker and a real worker: transactions
committed and aborted, batches compressed with every codec by kcat (librdkafka), a compacted input
topic, and a committed offset that DeleteRecords left below the log start.  Each scenario prints
the chaos figures against the offline replay of what the log holds."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import subprocess
import time

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.chaos.harness import committed_records, oracle_of, processed, produce, settle, traffic
from tests.conftest import Deployment, by_label, scrape, wait_until

pytestmark = pytest.mark.integration


async def produce_transactions(bootstrap: str, topic: str, keyed: list[tuple[bytes, bytes]],
                               size: int = 50, abort_every: int = 3) -> tuple[int, int]:
    """Single events in transactions of ``size``; every ``abort_every``-th one is aborted.
    Returns (events committed, events aborted)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="chaos-tx",
                                enable_idempotence=True, acks="all")
    await producer.start()
    committed = aborted = 0
    try:
        for n, start in enumerate(range(0, len(keyed), size)):
            chunk = keyed[start:start + size]
            await producer.begin_transaction()
            for key, line in chunk:
                await producer.send(topic, line, key=key)
            if n % abort_every == abort_every - 1:
                await producer.abort_transaction()
                aborted += len(chunk)
            else:
                await producer.commit_transaction()
                committed += len(chunk)
    finally:
        await producer.stop()
    return committed, aborted


def test_transactional_producer_committed_and_aborted(deployment: Deployment) -> None:
    deployment.partitions = 3
    assert deployment.cli("topics", "create").returncode == 0
    keyed = traffic(campaigns=6, hours=2, seed=43)
    half = len(keyed) // 2
    # A backlog before the worker starts, and live transactions while it runs.
    asyncio.run(produce_transactions(deployment.bootstrap, deployment.input_topic, keyed[:half]))
    port = deployment.start_worker()
    started = time.monotonic()
    committed, aborted = asyncio.run(produce_transactions(
        deployment.bootstrap, deployment.input_topic, keyed[half:]))
    figures = settle("transactional producer", deployment, started)
    samples = scrape(port)
    print(f"  committed {committed} events, aborted {aborted}; gaps confirmed "
          f"{samples[('socialstream_offset_gaps_total', ())]:.0f}, re-reads "
          f"{samples[('socialstream_consumer_rereads_total', ())]:.0f}")
    assert figures.exact, figures.line()
    # Markers and aborted records inside one fetch are skipped by the fetch itself; only a gap
    # between two fetches is checked against the log (counted as a gap), never re-read.
    assert aborted > 300 and samples[("socialstream_consumer_rereads_total", ())] == 0
    assert not by_label(samples, "socialstream_dead_letters_total", "reason")


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_from_kcat(deployment: Deployment, codec: str) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed (Debian package kcat; scripts/setup installs it)"
    deployment.partitions = 2
    assert deployment.cli("topics", "create").returncode == 0
    keyed = traffic(campaigns=4, hours=1, seed=44)
    data = b"".join(key + b"\t" + line + b"\n" for key, line in keyed)
    port = deployment.start_worker()
    started = time.monotonic()
    # The Java client's partitioner, so each campaign's events arrive at its owner in order.
    subprocess.run([kcat, "-P", "-b", deployment.bootstrap, "-t", deployment.input_topic,
                    "-K", "\t", "-z", codec, "-X", "partitioner=murmur2_random",
                    "-X", "linger.ms=50"], input=data, check=True, timeout=120)
    figures = settle(f"kcat -z {codec}", deployment, started)
    assert figures.exact, figures.line()
    assert processed(port) == len(keyed)
    assert deployment.workers[-1].poll() is None


def test_compacted_input_topic(deployment: Deployment) -> None:
    """Compaction leaves holes in the offsets (older values of a key are gone)."""
    deployment.partitions = 2

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=deployment.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(deployment.input_topic, 2, 1, topic_configs={
                "cleanup.policy": "compact", "segment.ms": "200",
                "min.cleanable.dirty.ratio": "0.001", "min.compaction.lag.ms": "0"})])
        finally:
            await admin.close()
    asyncio.run(create())
    assert deployment.cli("topics", "create").returncode == 0
    keyed = traffic(campaigns=4, hours=1, seed=45)
    produce(deployment, keyed, "--batch-size", "20")

    async def holes() -> int:
        records = await committed_records(deployment.bootstrap, deployment.input_topic)
        by_partition: dict[int, list[int]] = {}
        for r in records:
            by_partition.setdefault(r.partition, []).append(r.offset)
        return sum(b - a - 1 for offsets in by_partition.values()
                   for a, b in itertools.pairwise(offsets))
    # The log cleaner runs in the background: keep rolling segments until it has compacted.
    filler = traffic(campaigns=4, hours=0.05, seed=46)
    def compacted() -> int:
        produce(deployment, filler[:5])
        return asyncio.run(holes())
    assert wait_until(compacted, timeout=120, every=3), "the broker never compacted the topic"

    async def stop_compacting() -> None:  # the oracle reads the log as the worker does
        admin = AIOKafkaAdminClient(bootstrap_servers=deployment.bootstrap)
        await admin.start()
        try:
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC,
                                                      deployment.input_topic,
                                                      {"cleanup.policy": "delete"})])
        finally:
            await admin.close()
    asyncio.run(stop_compacting())
    time.sleep(2)
    port = deployment.start_worker()
    figures = settle("compacted input", deployment, time.monotonic())
    assert figures.exact, figures.line()
    assert scrape(port)[("socialstream_offset_gaps_total", ())] > 0


def test_committed_offset_below_the_log_start(deployment: Deployment) -> None:
    """DeleteRecords moves the log start past the group's committed offset while the worker is
    down: it resumes at the log start, without stalling or re-reading forever."""
    deployment.partitions = 1
    assert deployment.cli("topics", "create").returncode == 0
    keyed = traffic(campaigns=3, hours=4, seed=47)
    third = len(keyed) // 3
    first, lost_while_down, rest = keyed[:third], keyed[third:2 * third], keyed[2 * third:]
    produce(deployment, first)
    port = deployment.start_worker()
    assert wait_until(lambda: processed(port) >= len(first) and scrape(port)[
        ("socialstream_state_snapshot_bytes_total", ())] > 0, timeout=120)
    deployment.stop()  # SIGTERM: a final commit at the end of `first`
    deployment.workers.clear()
    produce(deployment, lost_while_down)

    async def delete_all_but_rest() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=deployment.bootstrap)
        await admin.start()
        try:
            tp = TopicPartition(deployment.input_topic, 0)
            end = max(r.offset for r in await committed_records(deployment.bootstrap,
                                                                  deployment.input_topic)) + 1
            await admin.delete_records({tp: RecordsToDelete(end)})
        finally:
            await admin.close()
    asyncio.run(delete_all_but_rest())
    produce(deployment, rest)
    started = time.monotonic()
    port = deployment.start_worker()
    # The oracle: what the worker applied before the deletion, then what the log holds now.
    expected = oracle_of([line for _, line in first + rest])
    figures = settle("committed offset below the log start", deployment, started,
                     expected=expected)
    assert figures.exact, figures.line()
    assert len(rest) > 500 and processed(port) == len(rest)
