"""Decode + validate throughput on a realistic mix, next to plain ``orjson.loads`` on the same
bytes.

    .venv/bin/python -m bench.decode [--events 50000] [--rounds 5]

Prints the median events/s of each over the rounds and their ratio (target: >= 150,000 events/s
on one core, ratio >= 0.5), plus where the validation time goes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import orjson

from streams.events import SocialEvent, decode
from tests.eventgen import mixed


def loads_all(payloads: list[bytes]) -> None:
    loads, error = orjson.loads, orjson.JSONDecodeError
    for raw in payloads:
        try:  # noqa: SIM105 (contextlib.suppress costs more than the loads it would time)
            loads(raw)
        except error:
            pass


def decode_all(payloads: list[bytes]) -> None:
    for raw in payloads:
        decode(raw)


def rate(func: Callable[[list[bytes]], None], payloads: list[bytes]) -> float:
    started = time.perf_counter()
    func(payloads)
    return len(payloads) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    payloads = [p.raw for p in mixed(args.events, seed=3)]
    size = statistics.mean(len(p) for p in payloads)
    valid = sum(isinstance(decode(p), SocialEvent) for p in payloads)
    print(f"{len(payloads)} events, mean {size:.0f} bytes, {1 - valid / len(payloads):.1%} invalid")
    baseline, ours = [], []
    for _ in range(args.rounds):  # interleaved, so machine noise hits both alike
        baseline.append(rate(loads_all, payloads))
        ours.append(rate(decode_all, payloads))
    b, o = statistics.median(baseline), statistics.median(ours)
    print(f"orjson.loads only        median {b:>10,.0f} events/s  (rounds: "
          f"{', '.join(f'{x:,.0f}' for x in baseline)})")
    print(f"decode + validate        median {o:>10,.0f} events/s  (rounds: "
          f"{', '.join(f'{x:,.0f}' for x in ours)})")
    print(f"ratio decode / orjson    {o / b:.2f}")
    print(f"per event: orjson {1e6 / b:.2f} us, validation and record {1e6 / o - 1e6 / b:.2f} us")


if __name__ == "__main__":
    main()
