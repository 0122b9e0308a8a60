"""``socialstream produce FILE`` while its broker restarts: everything the report calls
acknowledged is on the topic, and whatever is not is named by line number.

The test runs its own broker (scripts/kafka-local) so it can stop it (``stop --keep``) in the
middle of the run and start the same cluster again on the same port after ~20 s, as a production
broker restart looks to a client.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.conftest import KAFKA_LOCAL, ROOT, read_to_end

pytestmark = pytest.mark.integration

EVENTS = 300_000  # one per message (--no-batch): several seconds of sending at full speed
DOWN_S = 20.0


def kafka_local(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(KAFKA_LOCAL), *args], capture_output=True,
                          text=True, timeout=300)


async def on_topic(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


def not_delivered(summary: str) -> set[int]:
    """Line numbers of a failure summary: ``...; not delivered: lines 3, 7-9 (Error); line 12
    (Other)``."""
    if "not delivered:" not in summary:
        return set()
    lines: set[int] = set()
    for spans in re.findall(r"lines? ([0-9][0-9, -]*) \(", summary.split("not delivered:")[1]):
        for span in spans.split(", "):
            first, _, last = span.partition("-")
            lines.update(range(int(first), int(last or first) + 1))
    return lines


def test_not_delivered_parses_the_summary() -> None:
    assert not_delivered("sent 5 events in 5 messages, all acknowledged by Kafka") == set()
    assert not_delivered("confirmed 4 of 9 events; not delivered: lines 3, 7-9 (E: x); "
                         "line 12 (F)") == {3, 7, 8, 9, 12}


def test_produce_rides_out_a_broker_restart(tmp_path: Path) -> None:
    state = str(tmp_path / "broker")
    started = kafka_local("start", "--dir", state)
    assert started.returncode == 0, started.stderr
    bootstrap = started.stdout.strip()
    name = uuid.uuid4().hex[:8]
    topic = f"events-{name}"
    env = {**os.environ, "SOCIALSTREAM_BOOTSTRAP_SERVERS": bootstrap,
           "SOCIALSTREAM_INPUT_TOPIC": topic,
           "SOCIALSTREAM_DLQ_TOPIC": f"{topic}.dlq", "SOCIALSTREAM_PARTITIONS": "4",
           "SOCIALSTREAM_RECOMMENDATIONS_TOPIC": f"recs-{name}",
           "SOCIALSTREAM_TRAINING_TOPIC": f"training-{name}",
           "SOCIALSTREAM_MODEL_TOPIC": f"models-{name}"}
    produce: subprocess.Popen[bytes] | None = None
    try:
        created = subprocess.run([sys.executable, "-m", "agents.cli", "topics", "create"],
                                 env=env, cwd=ROOT, capture_output=True, timeout=120)
        assert created.returncode == 0, created.stderr
        events = tmp_path / "events.jsonl"
        with open(events, "wb") as out:  # line i is event ev-i
            for i in range(1, EVENTS + 1):
                out.write(orjson.dumps({"event_id": f"ev-{i}", "campaign_id": f"camp-{i % 40}",
                                        "type": "impression"}) + b"\n")
        log = open(tmp_path / "produce.err", "wb")  # noqa: SIM115 (closed below)
        began = time.monotonic()
        produce = subprocess.Popen([sys.executable, "-m", "agents.cli", "produce", str(events),
                                    "--no-batch"], env=env, cwd=ROOT, stderr=log,
                                   stdout=subprocess.DEVNULL)
        before = 0
        while before == 0 and time.monotonic() - began < 60:  # it is sending: stop the broker
            before = asyncio.run(on_topic(bootstrap, topic))
        stopped = kafka_local("stop", "--keep", "--dir", state)
        assert stopped.returncode == 0, stopped.stderr
        down_at = time.monotonic()
        assert produce.poll() is None, "produce ended before the broker stopped: use more events"
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - down_at)))
        again = kafka_local("start", "--dir", state)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == bootstrap
        back_at = time.monotonic()
        code = produce.wait(timeout=240)
        log.close()
        ended = time.monotonic()
        stderr = (tmp_path / "produce.err").read_text()
        summary = stderr.strip().splitlines()[-1]

        records = asyncio.run(read_to_end(bootstrap, topic))
        ids = Counter(orjson.loads(line)["event_id"] for r in records
                      for line in r.value.split(b"\n"))
        missing = not_delivered(summary)
        confirmed = set(range(1, EVENTS + 1)) - missing
        lost = [n for n in confirmed if f"ev-{n}" not in ids]
        duplicates = sum(ids.values()) - len(ids)
        print(f"\nbroker stopped {down_at - began:.1f} s into the run ({before} records on the "
              f"topic), serving again {back_at - down_at:.1f} s later; produce exit {code} after "
              f"{ended - began:.1f} s\n"
              f"events {EVENTS}, confirmed {len(confirmed)}, on topic {len(ids)} distinct "
              f"({sum(ids.values())} records), duplicates {duplicates}, lost {len(lost)}\n"
              f"produce said: {summary}")

        assert "never retrieved" not in stderr and "Traceback" not in stderr, stderr[-3000:]
        assert not lost, f"acknowledged but not on the topic: lines {lost[:20]}"
        if code == 0:
            assert summary.startswith(f"sent {EVENTS} events"), summary
            assert len(ids) == EVENTS
        else:
            assert code == 1, stderr[-3000:]
            assert summary.startswith(f"confirmed {len(confirmed)} of {EVENTS} events"), summary
            assert missing, summary
        assert set(ids) <= {f"ev-{n}" for n in range(1, EVENTS + 1)}
    finally:
        if produce is not None and produce.poll() is None:
            produce.kill()
            produce.wait()
        kafka_local("stop", "--dir", state)
