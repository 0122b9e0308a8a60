"""``socialstream consume``: print a topic's messages as JSON lines (value, key, headers, where)."""

from __future__ import annotations

import base64
import sys
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from agents.kafka import client_options
from streams.config import Settings
from streams.errors import ConfigError


def render(record: Any) -> bytes:
    """One message as a JSON object; a value that is not JSON is kept as text (or base64)."""
    out: dict[str, Any] = {"topic": record.topic, "partition": record.partition,
                           "offset": record.offset, "timestamp": record.timestamp,
                           "key": _text(record.key),
                           "headers": {k: _text(v) for k, v in record.headers or ()}}
    try:
        out["value"] = orjson.loads(record.value) if record.value is not None else None
    except orjson.JSONDecodeError:
        out["value_text"] = _text(record.value)
    return orjson.dumps(out)


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode()


async def consume(settings: Settings, topic: str, *, limit: int | None = None,
                  from_beginning: bool = False, idle_timeout: float | None = None) -> int:
    """Read all partitions without a consumer group: nothing is committed, nobody is disturbed."""
    consumer = AIOKafkaConsumer(topic, **client_options(settings), group_id=None,
                                enable_auto_commit=False,
                                auto_offset_reset="earliest" if from_beginning else "latest")
    await consumer.start()
    count = 0
    try:
        if topic not in await consumer.topics():
            raise ConfigError(f"topic {topic} does not exist")
        out = sys.stdout.buffer
        while limit is None or count < limit:
            batch = await consumer.getmany(timeout_ms=int((idle_timeout or 3600) * 1000),
                                           max_records=None if limit is None else limit - count)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    out.write(render(record) + b"\n")
                    count += 1
            out.flush()
    finally:
        await consumer.stop()
    return count
