"""Two workers side by side on one core, fed the same single-event messages at the same rate, each
from its own topic: the CPU per event of B against A, window by window.

    .venv/bin/python -m bench.pair [--rate 12000] [--seconds 40] [--rounds 4] [--b-tree DIR]
        [--b-partitions N]

Why: this shared machine's speed drifts by a third within minutes (drains of one load gave 36,000
to 62,000 events/s within ten minutes), so two runs one after the other cannot show a change of a
few per cent, nor can interleaved ones.  Two workers on core 0 at the same moments share every
drift: each one's CPU per event moved by up to 12% from one 10-second window to the next, their
ratio by about 1% within a round and by a few per cent from round to round.  So the ratio, not
either figure, is what this prints.

Each round starts both workers afresh on fresh topics; rounds alternate which one starts first,
and the figure is the geometric mean of the rounds' medians.  A first round on the fresh broker
is run and not counted: in A/A runs (the same code both sides) it was 8-12% off, where the
counted rounds gave 1.005, 1.004 and 0.997; comparisons that changed nothing measurable gave
rounds from 0.962 to 1.013, so a difference under about 3% is noise.

B is the worker of another source tree (``--b-tree``, e.g. ``git worktree add /tmp/old <commit>``)
or of this one with the input topic in fewer partitions (``--b-partitions``).  Both read the
simulated day of ``bench.peer`` (then laps of it) as single-event messages from a librdkafka
producer; the broker, the producer and this process run on the other cores (as ``bench.peer
--latency``), and ``--rate`` is per worker: keep the two together well under the core (each under
about a third of the capacity that ``bench.peer --latency --latency-rate 80%`` prints), or the
windows measure a backlog.  CPU is user + system time of each worker process, all threads, from
/proc.  At such rates a worker costs about twice its drained CPU per event (fixed work per fetch
and per unit, which a drain of a pre-filled topic hardly sees).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from agents.kafka import owner_partition
from bench.ingest import (
    ROOT,
    cpu_seconds,
    local_broker,
    processed,
    stop_workers,
)
from bench.peer import BROKER_JVM, PARTITIONS, day_lines, endless, start_worker, wait_ready

WINDOW = 10.0  # seconds per measured window


def run(bootstrap: str, lines: list[bytes], rate: float, seconds: float, warmup: float,
        sides: list[tuple[int, Path]]) -> list[float]:
    """CPU per event of the second side over the first's in each window after the warm-up; the
    first side's worker starts first."""
    from confluent_kafka import Producer

    started = [start_worker(bootstrap, "pair", partitions, root) for partitions, root in sides]
    workers, topics = [w for w, _ in started], [t for _, t in started]
    try:
        wait_ready(workers)
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
        print(f"  first {events[0] / WINDOW:>8,.0f} ev/s {per[0]:6.1f} µs/event   "
              f"second {events[1] / WINDOW:>8,.0f} ev/s {per[1]:6.1f} µs/event   "
              f"second/first {ratios[-1]:.3f}", flush=True)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=12_000, help="events/s to each worker")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--b-tree", type=Path, default=ROOT,
                        help="the source tree of worker B (default: this one)")
    parser.add_argument("--b-partitions", type=int, default=PARTITIONS,
                        help="input partitions of worker B")
    parser.add_argument("--rounds", type=int, default=4,
                        help="rounds counted, alternating which worker starts first")
    parser.add_argument("--events-file", type=Path, help="JSONL events (default: simulate)")
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    lines = day_lines(args.events_file)
    cores = os.cpu_count() or 1
    if cores > 1:  # this process and the load off the workers' core 0
        os.sched_setaffinity(0, range(1, cores))
    a, b = (PARTITIONS, ROOT), (args.b_partitions, args.b_tree.resolve())
    medians = []  # B over A, per round
    with tempfile.TemporaryDirectory(prefix="bench-pair-jvm-") as jvm_dir, \
            local_broker(cores=f"1-{cores - 1}" if cores > 1 else None,
                         jvm_options=BROKER_JVM.format(log=Path(jvm_dir) / "safepoints.log")) \
            as bootstrap:
        for r in range(args.rounds + 1):
            swapped = r % 2 == 0
            print(f"round {r}{' (warm-up, not counted)' if not r else ''}: "
                  f"{'B' if swapped else 'A'} started first", flush=True)
            ratios = run(bootstrap, lines, args.rate, args.seconds, args.warmup,
                         [b, a] if swapped else [a, b])
            median = statistics.median(ratios)
            b_over_a = 1 / median if swapped else median
            print(f"  B/A median {b_over_a:.3f}", flush=True)
            if r:
                medians.append(b_over_a)
    print(f"B/A CPU per event: {statistics.geometric_mean(medians):.3f}, geometric mean of "
          f"{len(medians)} rounds ({', '.join(f'{m:.3f}' for m in medians)}); A: this tree, "
          f"{PARTITIONS} partitions; B: {b[1]}, {b[0]} partitions; {args.rate:,.0f} events/s "
          "each")


if __name__ == "__main__":
    main()
