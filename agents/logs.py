"""Worker logging: the JSON line format (``SOCIALSTREAM_LOG_FORMAT=json``) and a one-line,
rate-limited report of malformed HTTP requests instead of aiohttp's traceback per request.

Faust's Worker (mode) configures logging when it starts: with ``logging_config`` it applies that
dictConfig instead of its own colored format, so every record (Faust, aiokafka, aiohttp, ours, and
stdout/stderr, which mode redirects into the ``mode.redirect`` logger) goes through the one
handler configured here.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson
from aiohttp.http_exceptions import HttpProcessingError

# Attributes a record may carry as ``extra``; the JSON format writes them as fields.
EXTRA_FIELDS = ("topic", "partition", "offset", "campaign")

# aiohttp's server logger: one ERROR record with a traceback for every request it cannot parse
# (aiohttp/web_protocol.py, RequestHandler.handle_error).
AIOHTTP_SERVER_LOGGER = "aiohttp.server"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time (ISO 8601, UTC), level, logger, message,
    the ``EXTRA_FIELDS`` the record has, a traceback as ``exc`` and mode's context as ``data``."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not turn into a non-JSON "Logging error"
            message = f"{record.msg!r} % {record.args!r}"
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for name in EXTRA_FIELDS:
            if name in record.__dict__:
                out[name] = record.__dict__[name]
        data = record.__dict__.get("data")  # mode's flight recorder context
        if isinstance(data, dict) and data:
            out["data"] = data
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()


class MalformedRequestFilter(logging.Filter):
    """For aiohttp's server logger: a request aiohttp could not parse (a request line or header
    over 8 KB, a bad header character, not HTTP at all) is still answered 400 by aiohttp, but
    logged as one WARNING line at most every ``interval`` seconds, with the number of similar
    ones not logged since, instead of a 9-line ERROR traceback each: anyone who can reach the
    port could otherwise flood the log.

    The exception's text is never logged: it quotes the offending bytes, which can be part of an
    Authorization header.  Other records (handler errors: bugs) pass unchanged."""

    def __init__(self, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self.suppressed = 0
        self._next_report = float("-inf")
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        now = self.clock()
        with self._lock:
            if now < self._next_report:
                self.suppressed += 1
                return False
            suppressed, self.suppressed = self.suppressed, 0
            self._next_report = now + self.interval
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        record.msg = "malformed HTTP request from %s: %s, answered %s"
        record.args = (remote or "unknown", type(exc).__name__, exc.code)
        if suppressed:
            record.msg += " (%d more since the last report, not logged)"
            record.args += (suppressed,)
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True


def logging_config(log_format: str, level: str) -> dict[str, Any] | None:
    """The dictConfig for Faust's Worker (``logging_config=``); None keeps mode's own
    human-readable format (the text format)."""
    if log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        # stderr, like mode's default handler.
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json",
                                 "stream": "ext://sys.stderr", "level": level.upper()}},
        "root": {"level": level.upper(), "handlers": ["default"]},
    }


def setup(log_format: str, level: str) -> dict[str, Any] | None:
    """Install the malformed-request filter; in the JSON format, configure logging now (so that
    what is logged before Faust's Worker starts is JSON too) and send warnings and uncaught
    exceptions through logging.  Returns the config to hand to ``faust.Worker``."""
    server_logger = logging.getLogger(AIOHTTP_SERVER_LOGGER)
    if not any(isinstance(f, MalformedRequestFilter) for f in server_logger.filters):
        server_logger.addFilter(MalformedRequestFilter())
    config = logging_config(log_format, level)
    if config is not None:
        logging.config.dictConfig(config)
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
    return config


def _log_uncaught(kind: type[BaseException], exc: BaseException,
                  tb: TracebackType | None) -> None:
    logging.getLogger("socialstream").critical("uncaught exception", exc_info=(kind, exc, tb))
