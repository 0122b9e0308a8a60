"""``socialstream produce``: JSON lines to Kafka, keyed by campaign_id, batched per key.

How delivery is confirmed, retried and reported: agents/delivery.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import orjson

from agents.delivery import MAX_BUFFERED_EVENTS, Batcher, Delivery, Item, ProduceReport
from streams.config import Settings
from streams.errors import InputFileError

__all__ = ["ProduceReport", "produce_file", "produce_items", "produce_lines"]


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


def read_numbered_lines(stream: IO[bytes], report: ProduceReport) -> Iterator[Item]:
    """(line number, key, line) for every non-blank line; a line that is not JSON is reported
    with its number on stderr and not sent."""
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
        yield number, key, line


def read_keyed_lines(stream: IO[bytes], report: ProduceReport) -> Iterator[tuple[bytes | None,
                                                                                 bytes]]:
    """(key, line) for every non-blank JSON line (see read_numbered_lines)."""
    for _, key, line in read_numbered_lines(stream, report):
        yield key, line


async def produce_file(settings: Settings, path: str, *, topic: str, batch_size: int = 100,
                       progress: bool = True) -> ProduceReport:
    """Send every JSON line of ``path``; per key, lines keep their order. Failures are reported
    by line number."""
    report = ProduceReport(unit="lines")
    with _open(path) as stream:  # a missing file is reported before any connection is made
        return await produce_items(settings, read_numbered_lines(stream, report), topic=topic,
                                   batch_size=batch_size, progress=progress, report=report)


async def produce_lines(settings: Settings, lines: Iterable[tuple[bytes | None, bytes]], *,
                        topic: str, batch_size: int = 100, progress: bool = True,
                        rate: float | None = None) -> ProduceReport:
    """Send (key, line) pairs; failures are reported by event index (1 is the first pair)."""
    items = ((n, key, line) for n, (key, line) in enumerate(lines, start=1))
    return await produce_items(settings, items, topic=topic, batch_size=batch_size,
                               progress=progress, rate=rate)


async def produce_items(settings: Settings, items: Iterable[Item], *, topic: str,
                        batch_size: int = 100, progress: bool = True, rate: float | None = None,
                        report: ProduceReport | None = None) -> ProduceReport:
    """Send (number, key, line) items batched per key; with ``rate``, at about that many events
    per second (everything pending goes out every 100 ms). The report counts only what the
    broker acknowledged."""
    report = report or ProduceReport()
    started = time.monotonic()
    delivery = Delivery(settings, topic, report, progress)
    batcher = Batcher(items, batch_size, min(MAX_BUFFERED_EVENTS, int(rate / 10) if rate
                                             else MAX_BUFFERED_EVENTS))
    shown = 0
    with _quiet_aiokafka():
        await delivery.start()
        try:
            for message in batcher:
                await delivery.send(message)
                if rate and not delivery.gave_up:
                    ahead = batcher.read / rate - (time.monotonic() - started)
                    if ahead > 0.1:
                        await asyncio.sleep(ahead)
                if progress and batcher.read - shown >= 5000:
                    shown = batcher.read
                    _progress(report, started)
        finally:
            report.events = batcher.read
            await delivery.finish()
    if progress:
        _progress(report, started, final=True)
    return report


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """aiokafka logs every failed reconnect (a few lines a second while a broker restarts);
    the report and the waiting lines say what matters."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _progress(report: ProduceReport, started: float, final: bool = False) -> None:
    if not sys.stderr.isatty() and not final:
        return
    rate = report.confirmed / max(time.monotonic() - started, 1e-6)
    end = "\n" if final else "\r"
    print(f"  {report.confirmed} events acknowledged, {report.messages} messages, "
          f"{rate:,.0f} events/s", end=end, file=sys.stderr, flush=True)
