"""Each override of a Faust internal in agents/app.py, exercised through real Faust (the pinned
version) against a real broker: the clients Faust builds with them are what socialstream needs.
Their behaviour under failure is in tests/chaos (transactions, kill -9, rebalances)."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import pytest

from agents.app import FETCH_MAX_WAIT_MS, LoopConsumer, SnapshottingConsumer, create_app
from streams.config import Settings

pytestmark = pytest.mark.integration


def test_faust_is_the_pinned_version() -> None:
    assert version("faust-streaming") == "0.15.3"


async def test_the_producer_faust_builds_is_idempotent_with_acks_all(kafka: str) -> None:
    app = create_app(Settings(bootstrap_servers=kafka, app_id="overrides-producer"))
    client: Any = app.producer._new_producer()  # type: ignore[attr-defined]
    await client.start()
    try:
        assert client._txn_manager is not None and client._sender._acks == -1
        sent = await client.send_and_wait("overrides-producer", b"x")
        assert sent.offset >= 0
        assert client._txn_manager.producer_id >= 0  # the broker gave it an idempotent id
    finally:
        await client.stop()


async def test_the_consumer_faust_builds_reads_committed_and_fetches_without_long_holds(
        kafka: str) -> None:
    app = create_app(Settings(bootstrap_servers=kafka, app_id="overrides-consumer"))
    consumer = app.consumer
    assert isinstance(consumer, SnapshottingConsumer)
    thread = consumer._thread
    assert isinstance(thread, LoopConsumer)
    client: Any = thread._create_worker_consumer(app.transport)
    await client.start()
    try:
        assert client._fetcher._isolation_level == 1  # READ_COMMITTED on the wire
        assert client._fetcher._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 20
    finally:
        await client.stop()
