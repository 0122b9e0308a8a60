"""``socialstream produce``: JSON lines to Kafka, keyed by campaign_id, batched per key.

Batches (newline-delimited events that share a key) are how the project's own producers reach
throughput: Faust's cost is per Kafka message, not per event (DESIGN.md section 9).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

from agents.kafka import new_producer
from streams.config import Settings
from streams.errors import InputFileError

MAX_BUFFERED_EVENTS = 20_000


@dataclass
class ProduceReport:
    events: int = 0
    messages: int = 0
    skipped: list[int] = field(default_factory=list)

    def summary(self) -> str:
        text = f"sent {self.events} events in {self.messages} messages"
        if self.skipped:
            text += f"; skipped {len(self.skipped)} lines that are not JSON"
        return text


def _key(line: bytes) -> bytes | None:
    """campaign_id of a JSON object line, else None (the worker re-routes or dead-letters it)."""
    obj = orjson.loads(line)
    campaign = obj.get("campaign_id") if isinstance(obj, dict) else None
    return campaign.encode() if isinstance(campaign, str) and campaign else None


def _open(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    if not Path(path).is_file():
        raise InputFileError(f"{path}: no such file")
    return open(path, "rb")


def read_keyed_lines(stream: IO[bytes], report: ProduceReport) -> Iterator[tuple[bytes | None,
                                                                                 bytes]]:
    """(key, line) for every non-blank line; a line that is not JSON is reported with its number
    on stderr and not sent."""
    for number, raw in enumerate(stream, start=1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            key = _key(line)
        except orjson.JSONDecodeError as exc:
            report.skipped.append(number)
            print(f"line {number}: not JSON, not sent ({exc})", file=sys.stderr)
            continue
        yield key, line


async def produce_file(settings: Settings, path: str, *, topic: str, batch_size: int = 100,
                       progress: bool = True) -> ProduceReport:
    """Send every JSON line of ``path``; per key, lines keep their order."""
    report = ProduceReport()
    with _open(path) as stream:  # a missing file is reported before any connection is made
        return await produce_lines(settings, read_keyed_lines(stream, report), topic=topic,
                                   batch_size=batch_size, progress=progress, report=report)


async def produce_lines(settings: Settings, lines: Iterable[tuple[bytes | None, bytes]], *,
                        topic: str, batch_size: int = 100, progress: bool = True,
                        rate: float | None = None,
                        report: ProduceReport | None = None) -> ProduceReport:
    """Send (key, line) pairs batched per key; with ``rate``, at about that many events per
    second (everything pending goes out every 100 ms)."""
    report = report or ProduceReport()
    started = time.monotonic()
    producer = new_producer(settings, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        pending: dict[bytes | None, list[bytes]] = {}

        async def flush(key: bytes | None) -> None:
            lines = pending.pop(key)
            await producer.send(topic, b"\n".join(lines), key=key)
            report.messages += 1
            report.events += len(lines)

        for n, (key, line) in enumerate(lines, start=1):
            batch = pending.setdefault(key, [])
            batch.append(line)
            if len(batch) >= batch_size:
                await flush(key)
            if n % MAX_BUFFERED_EVENTS == 0 or (rate and n % max(1, int(rate / 10)) == 0):
                for k in list(pending):
                    await flush(k)
            if rate:
                ahead = n / rate - (time.monotonic() - started)
                if ahead > 0.1:
                    await asyncio.sleep(ahead)
            if progress and n % 5000 == 0:
                _progress(report, started)
        for k in list(pending):
            await flush(k)
        await producer.flush()
    finally:
        await producer.stop()
    if progress:
        _progress(report, started, final=True)
    return report


def _progress(report: ProduceReport, started: float, final: bool = False) -> None:
    if not sys.stderr.isatty() and not final:
        return
    rate = report.events / max(time.monotonic() - started, 1e-6)
    end = "\n" if final else "\r"
    print(f"  {report.events} events, {report.messages} messages, {rate:,.0f} events/s",
          end=end, file=sys.stderr, flush=True)
