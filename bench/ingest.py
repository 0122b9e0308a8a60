"""Sustained ingest throughput against a real local Kafka broker: the Faust worker next to a plain
aiokafka loop doing the same work (consume, decode, dead-letter the invalid) in the same run.

    .venv/bin/python -m bench.ingest [--events 200000] [--single-events 20000] [--rounds 3]
                                     [--profile]

Each measured process is pinned to one core (taskset).  Input is pre-loaded, then each consumer
(a fresh consumer group) reads it until drained; events/s is measured from its first to its last
processed event.  Shapes: batched (100 events per Kafka message, what socialstream's producers
send) and single (one event per message, what a naive client sends).  Scaling rows run the
single-event shape with 1 and 2 worker processes and with 1 and 4 partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from agents.kafka import ensure_topics, new_producer, owner_partition
from streams.config import Settings
from streams.events import Rejected, SocialEvent, decode_message
from tests.eventgen import mixed

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def preload(settings: Settings, events: int, per_message: int) -> None:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=20,
                                max_batch_size=512 * 1024, acks=1)
    await producer.start()
    try:
        groups: dict[str, list[bytes]] = collections.defaultdict(list)
        for p in mixed(events, seed=5):
            key = p.campaign_id or ""
            groups[key].append(p.raw)
            if len(groups[key]) >= per_message:
                await producer.send(settings.input_topic, b"\n".join(groups.pop(key)),
                                    key=key.encode())
        for key, lines in groups.items():
            await producer.send(settings.input_topic, b"\n".join(lines), key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()


def processed(port: int) -> float:
    """Events a worker has finished with (applied, dead-lettered or skipped as duplicates), from
    its /metrics; -1 while its HTTP server is not up."""
    return progress(port)[0]


def progress(port: int) -> tuple[float, float]:
    """``processed``, and the wall time (Unix seconds) the worker last finished handling input
    (0 before it has)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return -1.0, 0.0
    done = last = 0.0
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name in ("socialstream_events_total", "socialstream_dead_letters_total",
                               "socialstream_duplicate_events_total"):
                done += sample.value
            elif sample.name == "socialstream_last_processed_timestamp_seconds":
                last = sample.value
    return done, last


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Drain:
    """One consumer draining a pre-filled topic: events/s and CPU per event, both measured from
    its first to its last processed event (start-up and group join left out)."""

    rate: float
    cpu_us: float


def worker_env(settings: Settings, app_id: str, port: int, data_dir: str) -> dict[str, str]:
    """Environment of one worker process; its training and model topics are its own, so that a
    later run never re-reads an earlier one's examples."""
    return {**os.environ, "SOCIALSTREAM_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "SOCIALSTREAM_INPUT_TOPIC": settings.input_topic,
            "SOCIALSTREAM_DLQ_TOPIC": settings.dlq_topic,
            "SOCIALSTREAM_RECOMMENDATIONS_TOPIC": settings.recommendations_topic,
            "SOCIALSTREAM_TRAINING_TOPIC": f"{app_id}.training",
            "SOCIALSTREAM_MODEL_TOPIC": f"{app_id}.models",
            "SOCIALSTREAM_PARTITIONS": str(settings.partitions),
            "SOCIALSTREAM_APP_ID": app_id, "SOCIALSTREAM_WEB_PORT": str(port),
            "SOCIALSTREAM_LOG_LEVEL": "warning", "SOCIALSTREAM_DATA_DIR": data_dir}


@dataclass(frozen=True, slots=True)
class Worker:
    """A running worker process, the port of its /metrics and its data dir."""

    proc: subprocess.Popen[bytes]
    port: int
    data_dir: str


def start_workers(settings: Settings, workers: int = 1, root: Path = ROOT) -> list[Worker]:
    """``workers`` worker processes of one fresh app (consumer group), worker i pinned to
    core i; ``root``: the source tree whose worker runs (another one: a ``git worktree``)."""
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    started = []
    for i in range(workers):
        port, data_dir = free_port(), tempfile.mkdtemp(prefix="bench-data-")
        proc = subprocess.Popen(
            ["taskset", "-c", str(i % (os.cpu_count() or 1)), sys.executable, "-m",
             "agents.cli", "worker"], env=worker_env(settings, app_id, port, data_dir), cwd=root,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(Worker(proc, port, data_dir))
    return started


def stop_workers(started: list[Worker]) -> None:
    for worker in started:
        worker.proc.terminate()
    for worker in started:
        worker.proc.wait(timeout=60)
        shutil.rmtree(worker.data_dir, ignore_errors=True)


def run_faust(settings: Settings, events: int, workers: int = 1,
              profile: Path | None = None) -> Drain:
    """``workers`` Faust worker processes, each on its own core, until they drained ``events``."""
    started = start_workers(settings, workers)
    pids = [worker.proc.pid for worker in started]
    spy = None
    try:
        first: tuple[float, float, float] | None = None  # wall time, events, CPU seconds
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            polled = [progress(worker.port) for worker in started]
            done = sum(max(n, 0.0) for n, _ in polled)
            now = time.time()
            if done > 0 and first is None:
                first = (now, done, sum(map(cpu_seconds, pids)))
                if profile is not None:
                    py_spy = str(Path(sys.executable).parent / "py-spy")
                    spy = subprocess.Popen([py_spy, "record", "--format", "raw", "-r", "200",
                                            "-o", str(profile), "--pid", str(pids[0])],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if done >= events and first is not None:
                cpu = sum(map(cpu_seconds, pids)) - first[2]
                n = max(done - first[1], 1.0)
                # Ends when the last worker finished, not when a poll saw it (up to 50 ms later:
                # 1-7% of a one-day drain of batched input, which takes under a second).
                end = max(last for _, last in polled)
                return Drain(n / max(end - first[0], 1e-9), cpu / n * 1e6)
            if any(worker.proc.poll() is not None for worker in started):
                raise RuntimeError("a worker exited before draining the input")
            time.sleep(0.05)
        raise RuntimeError("workers did not drain the input within 600 s")
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=30)
        stop_workers(started)


@contextlib.contextmanager
def local_broker(port: int | None = None, cores: str | None = None,
                 jvm_options: str | None = None) -> Iterator[str]:
    """A fresh real Kafka broker of this project's scripts/kafka-local in a temp dir; yields its
    bootstrap address and stops it (deleting the dir) on the way out.  ``cores`` (taskset's
    list, e.g. "1") pins every thread of the broker there; ``jvm_options`` replace Kafka's
    default KAFKA_JVM_PERFORMANCE_OPTS."""
    state = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    kafka_local = [sys.executable, str(ROOT / "scripts" / "kafka-local")]
    env = {**os.environ, **({"KAFKA_JVM_PERFORMANCE_OPTS": jvm_options} if jvm_options else {})}
    bootstrap = subprocess.run([*kafka_local, "start", "--dir", str(state), "--fresh",
                                "--port", str(port or free_port())], env=env,
                               check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    if cores is not None:
        pid = (state / "broker.pid").read_text().strip()
        subprocess.run(["taskset", "-a", "-p", "-c", cores, pid], check=True,
                       stdout=subprocess.DEVNULL)
    try:
        yield bootstrap
    finally:
        subprocess.run([*kafka_local, "stop", "--dir", str(state)], check=False)


async def plain_loop(settings: Settings, events: int) -> float:
    """The same work with aiokafka alone: consume, decode, route check, dead-letter, count."""
    consumer = AIOKafkaConsumer(settings.input_topic, bootstrap_servers=settings.bootstrap_servers,
                                group_id=f"plain-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=True,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    producer = new_producer(settings, linger_ms=5)
    await consumer.start()
    await producer.start()
    counts: collections.Counter[str] = collections.Counter()
    done = 0
    started = 0.0
    try:
        while done < events:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            if not started and batch:
                started = time.perf_counter()
            for records in batch.values():
                for record in records:
                    for line in decode_message(record.value):
                        event = line.result
                        if isinstance(event, Rejected):
                            headers = [("error.reason", event.reason.value.encode()),
                                       ("error.detail", event.detail.encode()),
                                       ("source.topic", record.topic.encode()),
                                       ("source.partition", str(record.partition).encode()),
                                       ("source.offset", str(record.offset).encode())]
                            await producer.send(settings.dlq_topic, line.raw, key=record.key,
                                                headers=headers)
                        elif owner_partition(event.campaign_id,
                                             settings.partitions) == record.partition:
                            counts[event.type] += 1
                        assert isinstance(event, SocialEvent | Rejected)
                        done += 1
        await producer.flush()
        return done / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await consumer.stop()


def run_plain(settings: Settings, events: int) -> float:
    """The plain loop in its own process, pinned to one core like the worker."""
    out = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-m", "bench.ingest", "--plain-loop",
         "--bootstrap", settings.bootstrap_servers, "--topic", settings.input_topic,
         "--partitions", str(settings.partitions), "--events", str(events)],
        cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def top_self_time(profile: Path, n: int = 12) -> list[tuple[float, str]]:
    """Self-time share per function from py-spy's raw (collapsed stack) output."""
    totals: collections.Counter[str] = collections.Counter()
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.split(";")[-1]
        totals[leaf] += int(count)
    all_samples = sum(totals.values()) or 1
    return [(c / all_samples, name) for name, c in totals.most_common(n)]


def scenario(bootstrap: str, partitions: int, tag: str) -> Settings:
    name = f"bench-{tag}-{uuid.uuid4().hex[:6]}"
    return Settings(bootstrap_servers=bootstrap, input_topic=name, dlq_topic=name + ".dlq",
                    recommendations_topic=name + ".recs", partitions=partitions)


def measure(args: argparse.Namespace, bootstrap: str) -> None:
    print(f"machine: {os.cpu_count()} cores; each measured process pinned to one core")
    for shape, per_message, events in (("batched x100", 100, args.events),
                                       ("single", 1, args.single_events)):
        settings = scenario(bootstrap, 4, shape.split()[0])
        asyncio.run(preload(settings, events, per_message))
        faust_rates, plain_rates = [], []
        for r in range(args.rounds):
            profile = Path(tempfile.mkdtemp()) / "faust.txt" \
                if args.profile and r == 0 else None
            faust_rates.append(run_faust(settings, events, profile=profile).rate)
            plain_rates.append(run_plain(settings, events))
            if profile is not None and profile.exists():
                print(f"  where the Faust worker's time goes ({shape}, py-spy self time):")
                for share, name in top_self_time(profile):
                    print(f"    {share:6.1%}  {name[:110]}")
        f, p = statistics.median(faust_rates), statistics.median(plain_rates)
        print(f"{shape:<13} {events:>7} events  Faust worker {f:>9,.0f} ev/s   plain aiokafka "
              f"loop {p:>9,.0f} ev/s   ratio {f / p:.2f}   (medians of {args.rounds}; Faust "
              f"{', '.join(f'{x:,.0f}' for x in faust_rates)}; plain "
              f"{', '.join(f'{x:,.0f}' for x in plain_rates)})")
    print("scaling, single-event shape (one event per Kafka message):")
    for partitions, workers in ((1, 1), (4, 1), (4, 2)):
        settings = scenario(bootstrap, partitions, f"scale{partitions}")
        asyncio.run(preload(settings, args.single_events, 1))
        rates = [run_faust(settings, args.single_events, workers=workers).rate
                 for _ in range(args.rounds)]
        print(f"  {partitions} partition(s), {workers} worker process(es): "
              f"{statistics.median(rates):>8,.0f} ev/s (median of {args.rounds}: "
              f"{', '.join(f'{x:,.0f}' for x in rates)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="batched-shape events")
    parser.add_argument("--single-events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="py-spy the first Faust run")
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument("--plain-loop", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--partitions", type=int, default=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_loop:
        settings = Settings(bootstrap_servers=args.bootstrap, input_topic=args.topic,
                            dlq_topic=args.topic + ".dlq", partitions=args.partitions)
        print(asyncio.run(plain_loop(settings, args.events)))
        return
    if args.bootstrap:
        measure(args, args.bootstrap)
        return
    with local_broker() as bootstrap:
        measure(args, bootstrap)

if __name__ == "__main__":
    main()
