"""``socialstream replay``: the file edge of streams.replay (progress, output files, summary)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO

import orjson

from streams.errors import InputFileError
from streams.replay import replay


def run_replay(events: str, *, out: str | None = None, report: str | None = None) -> int:
    if events != "-" and not Path(events).is_file():
        raise InputFileError(f"{events}: no such file")
    started = time.monotonic()
    source: IO[bytes] = sys.stdin.buffer if events == "-" else open(events, "rb")  # noqa: SIM115
    sink: IO[bytes] | None = open(out, "wb") if out else None  # noqa: SIM115
    try:
        result = replay(source, emit=(lambda line: sink.write(line + b"\n")) if sink else None,
                        progress=lambda n: _progress(n, started))
    finally:
        source.close()
        if sink is not None:
            sink.close()
    print(file=sys.stderr)
    summary = result.report()
    if report:
        Path(report).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    events_ = summary["events"]
    print(f"{events_['accepted']} events accepted, {events_['rejected']} rejected, "
          f"{events_['duplicates']} duplicates, {summary['campaigns']} campaigns "
          f"in {time.monotonic() - started:.1f}s", file=sys.stderr)
    for name in ("sentiment", "post_engagement", "creative_ctr"):
        figures = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in summary[name].items())
        print(f"{name}: {figures}")
    return 0


def _progress(lines: int, started: float) -> None:
    rate = lines / max(time.monotonic() - started, 1e-9)
    print(f"  {lines:,} lines, {rate:,.0f} lines/s", end="\r", file=sys.stderr, flush=True)
