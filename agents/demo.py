"""``socialstream demo``: a real local Kafka broker, a worker, the bundled sample events (with
their dead letters), then a simulated day of campaign traffic with a live view of throughput, lag
and recommendations as they arrive, and a closing summary.

Everything it starts it also stops, on success, on error and on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from agents.kafka import client_options, ensure_topics
from agents.produce import produce_file, produce_lines
from streams.config import ENV_PREFIX, Settings
from streams.errors import StreamsError
from streams.simulator import parse_duration, simulate

_CR = "\r" if sys.stdout.isatty() else "\n"
_CLEAR = "\r\033[K" if sys.stdout.isatty() else "\n"
ROOT = Path(__file__).resolve().parents[1]
KAFKA_LOCAL = ROOT / "scripts" / "kafka-local"
SAMPLE = Path(__file__).resolve().parent / "data" / "sample_events.jsonl"


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly these settings."""
    return {ENV_PREFIX + f.name.upper(): str(getattr(settings, f.name)) for f in fields(settings)}


@contextmanager
def local_kafka(state: Path) -> Iterator[str]:
    if not KAFKA_LOCAL.exists():
        raise StreamsError("the demo runs from a source checkout: scripts/kafka-local not found")
    started = subprocess.run([sys.executable, str(KAFKA_LOCAL), "start", "--dir", str(state)],
                             stdout=subprocess.PIPE, text=True)
    if started.returncode != 0:
        raise StreamsError("could not start the local Kafka broker (see messages above)")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([sys.executable, str(KAFKA_LOCAL), "stop", "--dir", str(state)])


@contextmanager
def worker_process(settings: Settings, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    import os

    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "agents.cli", "worker"],
                                env={**os.environ, **settings_env(settings)},
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def counts(port: int) -> tuple[dict[str, int], dict[str, int], int] | None:
    """(accepted by type, dead-lettered by reason, consumer lag) from the worker's /metrics,
    None if it is down."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return None
    accepted: dict[str, int] = {}
    dead: dict[str, int] = {}
    lag = 0
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            if s.name == "socialstream_events_total" and s.value:
                accepted[s.labels["type"]] = int(s.value)
            elif s.name == "socialstream_dead_letters_total" and s.value:
                dead[s.labels["reason"]] = int(s.value)
            elif s.name == "socialstream_consumer_lag_messages":
                lag += int(s.value)
    return accepted, dead, lag


def run_demo(settings: Settings, timeout: float = 120.0, seconds: float = 60.0) -> int:
    import socket

    work = Path(tempfile.mkdtemp(prefix="socialstream-demo-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    total = sum(1 for line in SAMPLE.read_bytes().splitlines() if line.strip())
    print("socialstream demo: 1/5 starting a local Apache Kafka broker", flush=True)
    try:
        with local_kafka(work / "kafka") as bootstrap:
            settings = settings.replace(bootstrap_servers=bootstrap, web_port=port,
                                        data_dir=str(work / "data"))
            asyncio.run(ensure_topics(settings))
            print(f"socialstream demo: 2/5 starting a worker (metrics on "
                  f"http://127.0.0.1:{port}/metrics)", flush=True)
            with worker_process(settings, work / "worker.log") as worker:
                print(f"socialstream demo: 3/5 producing {total} sample events "
                      f"({SAMPLE.name}) to {settings.input_topic}", flush=True)
                sent = asyncio.run(produce_file(settings, str(SAMPLE),
                                                topic=settings.input_topic))
                if not sent.ok:
                    raise StreamsError(f"producing the sample events: {sent.summary()}")
                result = _watch(port, total, timeout, worker)
                if result is None:
                    print((work / "worker.log").read_text(errors="replace")[-3000:],
                          file=sys.stderr)
                    raise StreamsError(f"the worker did not process {total} events within "
                                       f"{timeout:.0f}s (log above)")
                _report(*result[:2], settings)
                print(f"\nsocialstream demo: 4/5 simulating a day of 8 campaigns in "
                      f"{seconds:.0f} s (meanwhile try: curl "
                      f"http://127.0.0.1:{port}/campaigns/sim-000)", flush=True)
                summary = asyncio.run(_simulate_live(settings, port, seconds, timeout, worker))
                print("socialstream demo: 5/5 summary")
                _summary(*summary)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _watch(port: int, total: int, timeout: float, worker: subprocess.Popen[bytes]
           ) -> tuple[dict[str, int], dict[str, int], int] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.poll() is None:
        seen = counts(port)
        if seen is not None:
            accepted, dead, _ = seen
            done = sum(accepted.values()) + sum(dead.values())
            print(f"{_CR}  accepted {sum(accepted.values()):>5}  dead-lettered "
                  f"{sum(dead.values()):>4}  of {total}", end="", flush=True)
            if done >= total:
                print()
                return seen
        time.sleep(0.5)
    print()
    return None


def _report(accepted: dict[str, int], dead: dict[str, int], settings: Settings) -> None:
    print(f"\nAccepted {sum(accepted.values())} events:")
    for name, n in sorted(accepted.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<12} {n:>6}")
    print(f"Dead-lettered {sum(dead.values())} events to {settings.dlq_topic} "
          "(original bytes + error.reason header):")
    for name, n in sorted(dead.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<28} {n:>4}")
    print("A few dead letters, as a consumer of the topic sees them:")
    for record in asyncio.run(_first_dead_letters(settings, 3)):
        headers = {k: v.decode(errors="replace") for k, v in record.headers}
        print(f"  [{headers['error.reason']}] {headers['error.detail'][:70]}\n"
              f"      from {headers['source.topic']}/{headers['source.partition']}"
              f"@{headers['source.offset']}: {record.value[:70]!r}")


async def _first_dead_letters(settings: Settings, n: int) -> list[Any]:
    consumer = AIOKafkaConsumer(settings.dlq_topic, **client_options(settings), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=5000, max_records=n)
        return [r for records in batch.values() for r in records][:n]
    finally:
        await consumer.stop()


async def _simulate_live(settings: Settings, port: int, seconds: float, timeout: float,
                         worker: subprocess.Popen[bytes]
                         ) -> tuple[int, float, Counter[str], dict[str, dict[str, Any]]]:
    """Simulated traffic paced over ``seconds``, with a line of live figures every second and the
    first recommendation of each action printed as it arrives."""
    events, _ = simulate(campaigns=8, creatives=4, duration_ms=parse_duration("24h"), seed=1)
    lines = [(e["campaign_id"].encode(), orjson.dumps(e)) for e in events]
    before = sum((counts(port) or ({}, {}, 0))[0].values())
    started = time.monotonic()
    producing = asyncio.create_task(produce_lines(
        settings, lines, topic=settings.input_topic, rate=len(lines) / seconds, progress=False))
    consumer = AIOKafkaConsumer(settings.recommendations_topic, **client_options(settings),
                                group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    by_action: Counter[str] = Counter()
    examples: dict[str, dict[str, Any]] = {}
    last_tick, last_done = started, before
    try:
        while time.monotonic() - started < seconds + timeout and worker.poll() is None:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    rec = orjson.loads(record.value)
                    by_action[rec["action"]] += 1
                    if rec["action"] not in examples:
                        examples[rec["action"]] = rec
                        print(f"{_CLEAR}  new {rec['action']:<20} {rec['campaign_id']}: "
                              f"{rec['explanation'][:90]}", flush=True)
            if time.monotonic() - last_tick >= 1.0:
                seen = await asyncio.to_thread(counts, port)
                if seen is None:
                    continue
                done, lag = sum(seen[0].values()), seen[2]
                rate = (done - last_done) / (time.monotonic() - last_tick)
                last_tick, last_done = time.monotonic(), done
                print(f"{_CR}  {done - before:>7} events  {rate:>7,.0f}/s  lag {lag:>5}  "
                      f"dead letters {sum(seen[1].values()):>3}  recommendations "
                      f"{sum(by_action.values()):>5}", end="", flush=True)
                if producing.done() and done - before >= len(lines) and lag == 0:
                    break
            if producing.done() and (producing.exception() or not producing.result().ok):
                break  # reported below
        print()
        sent = await producing
        if not sent.ok:
            raise StreamsError(f"producing the simulated day: {sent.summary()}")
    finally:
        await consumer.stop()
    return len(lines), time.monotonic() - started, by_action, examples


def _summary(events: int, elapsed: float, by_action: Counter[str],
             examples: dict[str, dict[str, Any]]) -> None:
    print(f"{events} simulated events in {elapsed:.0f} s; "
          f"{sum(by_action.values())} recommendations:")
    for action, n in by_action.most_common():
        rec = examples[action]
        print(f"  {action:<20} {n:>5}   e.g. {rec['campaign_id']} -> {rec['target']} "
              f"(confidence {rec['confidence']:.2f}, reason {rec['reason']})")
    print("Recommendations are JSON on the recommendations topic (docs/recommendations.md); "
          "watch them live with: socialstream consume social.recommendations")
