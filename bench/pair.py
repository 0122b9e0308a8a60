"""Two workers side by side on one core, fed the same single-event messages at the same rate, each
from its own topic: the CPU per event of B against A, window by window.

    .venv/bin/python -m bench.pair [--rate 14000] [--seconds 60] [--b-tree DIR] [--b-partitions N]

Why: this shared machine's speed drifts by a third within minutes (drains of one load gave 36,000
to 62,000 events/s within ten minutes), so two runs one after the other cannot show a change of a
few per cent, nor can interleaved ones.  Two workers on core 0 at the same moments share every
drift: in A/A runs (the same code both sides) their CPU per event moved by up to 12% from one
10-second window to the next, and the ratio B/A by about 1%, with medians of 0.988 and 1.012: a
difference under about 2% is noise.  So the ratio, not either figure, is what this prints.

B is the worker of another source tree (``--b-tree``, e.g. ``git worktree add /tmp/old <commit>``)
or of this one with the input topic in fewer partitions (``--b-partitions``).  Both read the
simulated day of ``bench.peer`` (then laps of it) as single-event messages from a librdkafka
producer; the broker, the producer and this process run on the other cores (as ``bench.peer
--latency``), and ``--rate`` is per worker: keep the two together under the core (below about
40% of the capacity that ``bench.peer --latency --latency-rate 80%`` prints, each), or the
windows measure a backlog.  CPU is user + system time of each worker process, all threads, from
/proc.  At a low rate this is mostly the cost of a worker's fixed per-fetch and per-unit work,
which a drain of a pre-filled topic (``bench.peer``) hardly sees.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from agents.kafka import owner_partition
from bench.ingest import (
    ROOT,
    Worker,
    cpu_seconds,
    local_broker,
    processed,
    start_workers,
    stop_workers,
)
from bench.peer import BROKER_JVM, PARTITIONS, create_topics, day_lines, endless, ready
from streams.config import Settings

WINDOW = 10.0  # seconds per measured window


def start(bootstrap: str, partitions: int, root: Path) -> tuple[Worker, str]:
    """A worker of ``root`` reading a fresh topic of ``partitions`` partitions, and the topic."""
    topic = f"pair-{uuid.uuid4().hex[:6]}"
    asyncio.run(create_topics(bootstrap, [topic, f"{topic}.recs"], partitions))
    settings = Settings(bootstrap_servers=bootstrap, input_topic=topic, dlq_topic=f"{topic}.dlq",
                        recommendations_topic=f"{topic}.recs", partitions=partitions)
    return start_workers(settings, root=root)[0], topic


def run(bootstrap: str, lines: list[bytes], rate: float, seconds: float, warmup: float,
        b_tree: Path, b_partitions: int) -> list[float]:
    """The B/A ratio of CPU per event in each window after the warm-up."""
    from confluent_kafka import Producer

    sides = [(PARTITIONS, ROOT), (b_partitions, b_tree)]
    started = [start(bootstrap, partitions, root) for partitions, root in sides]
    workers, topics = [w for w, _ in started], [t for _, t in started]
    try:
        deadline = time.monotonic() + 180
        while not all(ready(w.port) for w in workers):
            if time.monotonic() > deadline or any(w.proc.poll() is not None for w in workers):
                raise RuntimeError("a worker did not become ready")
            time.sleep(0.2)
        total = int(rate * (warmup + seconds))
        load = [(key.encode(), value) for key, value in itertools.islice(endless(lines), total)]
        routes = [[owner_partition(key.decode(), n) for key, _ in load] for n, _ in sides]
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": 1,
                             "queue.buffering.max.messages": 2_000_000})
        marks: list[list[tuple[float, float]]] = []
        sent, began, next_mark = 0, time.perf_counter(), warmup
        while sent < total:
            elapsed = time.perf_counter() - began
            if elapsed >= next_mark:
                marks.append([(processed(w.port), cpu_seconds(w.proc.pid)) for w in workers])
                next_mark += WINDOW
            for i in range(sent, min(total, int(elapsed * rate) + 1)):
                key, value = load[i]
                for topic, route in zip(topics, routes, strict=True):
                    producer.produce(topic, value, key, route[i])
            sent = max(sent, min(total, int(elapsed * rate) + 1))
            producer.poll(0)
            time.sleep(0.001)
        producer.flush(60)
    finally:
        stop_workers(workers)
    ratios = []
    for before, after in itertools.pairwise(marks):
        events = [after[i][0] - before[i][0] for i in range(2)]
        per = [(after[i][1] - before[i][1]) / max(events[i], 1.0) * 1e6 for i in range(2)]
        ratios.append(per[1] / per[0])
        print(f"A {events[0] / WINDOW:>8,.0f} ev/s {per[0]:6.1f} µs/event   "
              f"B {events[1] / WINDOW:>8,.0f} ev/s {per[1]:6.1f} µs/event   B/A {ratios[-1]:.3f}",
              flush=True)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=14_000, help="events/s to each worker")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--b-tree", type=Path, default=ROOT,
                        help="the source tree of worker B (default: this one)")
    parser.add_argument("--b-partitions", type=int, default=PARTITIONS,
                        help="input partitions of worker B")
    parser.add_argument("--events-file", type=Path, help="JSONL events (default: simulate)")
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    lines = day_lines(args.events_file)
    cores = os.cpu_count() or 1
    if cores > 1:  # this process and the load off the workers' core 0
        os.sched_setaffinity(0, range(1, cores))
    with tempfile.TemporaryDirectory(prefix="bench-pair-jvm-") as jvm_dir, \
            local_broker(cores=f"1-{cores - 1}" if cores > 1 else None,
                         jvm_options=BROKER_JVM.format(log=Path(jvm_dir) / "safepoints.log")) \
            as bootstrap:
        ratios = run(bootstrap, lines, args.rate, args.seconds, args.warmup,
                     args.b_tree.resolve(), args.b_partitions)
    print(f"B/A CPU per event, median of {len(ratios)} windows of {WINDOW:.0f} s: "
          f"{statistics.median(ratios):.3f}  (A: this tree, {PARTITIONS} partitions; B: "
          f"{args.b_tree.resolve()}, {args.b_partitions} partitions; {args.rate:,.0f} events/s "
          "each; A/A runs gave 0.988 and 1.012)")


if __name__ == "__main__":
    main()
