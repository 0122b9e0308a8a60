"""The web port's hardening without Kafka: the bearer-token check and middleware, no Server
header, one rate-limited line per malformed request, the JSON log format."""

from __future__ import annotations

import asyncio
import io
import logging
import logging.config
import socket
import sys
from collections.abc import Iterator

import orjson
import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.test_utils import TestClient, TestServer

from agents.logs import (
    AIOHTTP_SERVER_LOGGER,
    JsonFormatter,
    MalformedRequestFilter,
    logging_config,
)
from agents.web import OPEN_PATHS, SERVER_NAME, authorized, secure

TOKEN = "s3cr3t-t0ken-0123456789"


@pytest.mark.parametrize(("header", "ok"), [
    (f"Bearer {TOKEN}", True),
    (f"bearer {TOKEN}", True),  # the scheme is case-insensitive (RFC 7235)
    (f"  Bearer   {TOKEN}  ", True),
    (None, False),
    ("", False),
    ("Bearer", False),
    ("Bearer ", False),
    (TOKEN, False),
    (f"Basic {TOKEN}", False),
    (f"Bearer {TOKEN}x", False),
    (f"Bearer {TOKEN[:-1]}", False),
    (f"Bearer {TOKEN.upper()}", False),
    ("Bearer \udcff\u00e9", False),  # undecodable bytes, non-ASCII: refused, not a 500
])
def test_bearer_token_check(header: str | None, ok: bool) -> None:
    assert authorized(header, TOKEN) is ok


def test_no_token_means_no_authentication() -> None:
    assert authorized(None, "")
    assert authorized("Bearer anything", "")


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert not authorized("Basic nope", TOKEN)  # compared even when the scheme is wrong
    assert authorized(f"Bearer {TOKEN}", TOKEN)
    assert calls == [(b"nope", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"path": request.path})


def make_app(token: str, metrics: bool = False) -> web.Application:
    app = web.Application()
    for path in (*OPEN_PATHS, "/models", "/campaigns/{campaign_id}"):
        app.router.add_get(path, ok)
    secure(app, token, metrics)
    return app


@pytest.fixture
def server_software(monkeypatch: pytest.MonkeyPatch) -> None:
    """secure() renames aiohttp's own Server value: restored after the test."""
    import aiohttp.web_response

    monkeypatch.setattr("aiohttp.web_response.SERVER_SOFTWARE",
                        vars(aiohttp.web_response)["SERVER_SOFTWARE"])


async def test_token_required_except_on_probes(server_software: None) -> None:
    async with TestClient(TestServer(make_app(TOKEN))) as client:
        for path in ("/models", "/campaigns/c1", "/table/campaign-state/c1", "/nothing"):
            for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                            {"Authorization": f"Basic {TOKEN}"}):
                resp = await client.get(path, headers=headers)
                assert resp.status == 401, (path, headers)
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")
                assert await resp.json() == {"error": "missing or wrong bearer token"}
                assert "Server" not in resp.headers
        good = {"Authorization": f"Bearer {TOKEN}"}
        for path in ("/models", "/campaigns/c1"):
            resp = await client.get(path, headers=good)
            assert resp.status == 200 and (await resp.json())["path"] == path
        assert (await client.get("/nothing", headers=good)).status == 404
        for path in OPEN_PATHS:
            resp = await client.get(path)
            assert resp.status == 200, path
            assert "Server" not in resp.headers


async def test_metrics_behind_the_token_when_asked(server_software: None) -> None:
    async with TestClient(TestServer(make_app(TOKEN, metrics=True))) as client:
        assert (await client.get("/metrics")).status == 401
        resp = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status == 200
        assert (await client.get("/healthz")).status == 200  # probes stay open
        assert (await client.get("/readyz")).status == 200


async def test_without_a_token_everything_is_open(server_software: None) -> None:
    async with TestClient(TestServer(make_app(""))) as client:
        for path in ("/models", "/campaigns/c1", "/healthz"):
            resp = await client.get(path)
            assert resp.status == 200
            assert "Server" not in resp.headers


def record(exc: BaseException | None = None, remote: str = "10.0.0.7") -> logging.LogRecord:
    return logging.LogRecord(AIOHTTP_SERVER_LOGGER, logging.ERROR, __file__, 1,
                             "Error handling request from %s", (remote,),
                             (type(exc), exc, None) if exc else None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_malformed_requests_are_one_line_per_interval_with_a_count() -> None:
    clock = Clock()
    flt = MalformedRequestFilter(interval=10.0, clock=clock)
    secret = LineTooLong(f"Authorization: Bearer {TOKEN}" + "x" * 9000, "8190")
    first = record(secret)
    assert flt.filter(first)
    assert first.getMessage() == "malformed HTTP request from 10.0.0.7: LineTooLong, answered 400"
    assert first.levelno == logging.WARNING and first.levelname == "WARNING"
    assert first.exc_info is None and first.exc_text is None  # no traceback, no quoted bytes
    assert TOKEN not in first.getMessage()

    for _ in range(19):
        clock.now += 0.4
        assert not flt.filter(record(LineTooLong("x", "8190")))
    clock.now += 2.0  # 9.6 s after the first line: still within its 10 s
    assert not flt.filter(record(BadHttpMessage("bad header")))
    assert flt.suppressed == 20

    clock.now = 1010.0
    later = record(BadHttpMessage(f"Invalid header value char: Bearer {TOKEN}"), remote="::1")
    assert flt.filter(later)
    assert later.getMessage() == ("malformed HTTP request from ::1: BadHttpMessage, answered "
                                  "400 (20 more since the last report, not logged)")
    assert TOKEN not in later.getMessage() and flt.suppressed == 0
    assert not flt.filter(record(LineTooLong("x", "8190")))


def test_other_server_records_pass_unchanged() -> None:
    flt = MalformedRequestFilter(clock=Clock())
    try:
        raise RuntimeError("handler bug")
    except RuntimeError as exc:
        bug = record(exc)
    plain = logging.LogRecord(AIOHTTP_SERVER_LOGGER, logging.DEBUG, __file__, 1, "hello", (),
                              None)
    for rec in (bug, plain, bug):
        assert flt.filter(rec)
    assert bug.levelno == logging.ERROR and bug.exc_info is not None
    assert bug.getMessage() == "Error handling request from 10.0.0.7"


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    logger = logging.getLogger(AIOHTTP_SERVER_LOGGER)
    flt = MalformedRequestFilter()
    logger.addFilter(flt)
    caplog.set_level(logging.DEBUG, logger=AIOHTTP_SERVER_LOGGER)
    try:
        yield caplog
    finally:
        logger.removeFilter(flt)


def raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(data)
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
        return out


async def test_a_real_aiohttp_server_answers_400_and_logs_one_line(
        server_log: pytest.LogCaptureFixture, server_software: None) -> None:
    """aiohttp, as Faust runs it: the filter sees its records and the 400s name no versions."""
    runner = web.AppRunner(make_app(TOKEN), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    loop = asyncio.get_running_loop()
    try:
        requests = [b"GET /" + b"a" * 9 * 1024 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 16 * 1024
                    + b"\r\n\r\n",
                    f"GET /models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\x01\r\n"
                    "\r\n".encode()] * 7
        for data in requests:
            answer = await loop.run_in_executor(None, raw_request, port, data)
            head = answer.split(b"\r\n\r\n")[0].decode()
            assert head.startswith("HTTP/1.0 400 Bad Request"), head
            assert f"\r\nServer: {SERVER_NAME}" in head and "aiohttp" not in head
    finally:
        await runner.cleanup()
    lines = [r for r in server_log.records if r.name == AIOHTTP_SERVER_LOGGER]
    assert [r.getMessage() for r in lines] == [
        "malformed HTTP request from 127.0.0.1: LineTooLong, answered 400"]
    assert TOKEN not in server_log.text and "Traceback" not in server_log.text


def fmt(rec: logging.LogRecord) -> dict[str, object]:
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    out: dict[str, object] = orjson.loads(line)
    return out


def test_json_lines_have_time_level_logger_message_and_known_extras() -> None:
    rec = logging.getLogger("agents.ingest").makeRecord(
        "agents.ingest", logging.INFO, __file__, 1, "applied %d events", (3,), None,
        extra={"partition": 2, "offset": 41, "campaign": "c-7", "unrelated": "x"})
    rec.created = 1767225600.25  # 2026-01-01T00:00:00.250Z
    assert fmt(rec) == {"time": "2026-01-01T00:00:00.250+00:00", "level": "INFO",
                        "logger": "agents.ingest", "message": "applied 3 events",
                        "partition": 2, "offset": 41, "campaign": "c-7"}


def test_json_lines_carry_tracebacks_and_survive_bad_records() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    out = fmt(rec)
    assert out["message"] == "failed" and out["level"] == "ERROR"
    assert "ValueError: boom" in str(out["exc"]) and "Traceback" in str(out["exc"])

    bad = logging.LogRecord("x", logging.WARNING, __file__, 1, "%d items", ("many",), None)
    assert fmt(bad)["message"] == "'%d items' % ('many',)"
    odd = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    odd.campaign = object()  # not JSON: written as its repr
    assert str(fmt(odd)["campaign"]).startswith("<object object")
    mode = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    mode.data = {"timeout": 3.5}
    assert fmt(mode)["data"] == {"timeout": 3.5}


def test_text_format_keeps_fausts_own_config() -> None:
    assert logging_config("text", "info") is None


def test_json_config_routes_every_logger_through_one_json_handler() -> None:
    config = logging_config("json", "warning")
    assert config is not None
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    config["handlers"]["default"]["stream"] = stream
    try:
        logging.config.dictConfig(config)
        logging.getLogger("aiokafka.consumer").warning("rebalancing")
        logging.getLogger("faust.worker").info("not at this level")
        logging.getLogger("agents.web").error("oops", extra={"offset": 9})
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x["logger"], x["level"], x["message"]) for x in lines] == [
        ("aiokafka.consumer", "WARNING", "rebalancing"), ("agents.web", "ERROR", "oops")]
    assert lines[1]["offset"] == 9
