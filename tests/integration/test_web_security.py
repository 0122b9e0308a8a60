"""The worker's web port against a real broker: the bearer token (also on requests Faust forwards
to the campaign's owner), open probes, no version in a Server header, no token in the log, one
log line for a flood of malformed requests, and the JSON log format."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from email.message import Message

import orjson
import pytest

from agents.kafka import owner_partition
from streams.simulator import HOUR_MS, simulate
from tests.conftest import Deployment, by_label, scrape, wait_until

pytestmark = pytest.mark.integration

TOKEN = "it-token-5f0c8a1e9b7d4c2f"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def get(port: int, path: str, headers: dict[str, str] | None = None,
        ) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def no_version(headers: Message) -> bool:
    server = headers.get("Server", "")
    return "aiohttp" not in server and "Python" not in server


def raw(port: int, data: bytes) -> bytes:
    """One request on its own connection; the whole answer (aiohttp closes after a 400)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
        return out


def log_text(deployment: Deployment, port: int) -> str:
    """The whole worker log (Deployment.log keeps only its end)."""
    return (deployment.tmp / f"worker-{port}.log").read_text(errors="replace")


def ready(port: int, partitions: int | None = None) -> bool:
    status, _, body = get(port, "/readyz")
    return status == 200 and (partitions is None
                              or len(orjson.loads(body)["partitions"]) == partitions)


def owned(port: int) -> list[int]:
    status, _, body = get(port, "/readyz")
    return list(orjson.loads(body)["partitions"]) if status == 200 else []


def test_token_guards_everything_but_the_probes(deployment: Deployment) -> None:
    deployment.extra_env["SOCIALSTREAM_WEB_TOKEN"] = TOKEN
    assert deployment.cli("topics", "create").returncode == 0
    port = deployment.start_worker()
    assert wait_until(lambda: ready(port, deployment.partitions), timeout=120)

    for path in ("/models", "/campaigns/x", "/table/", "/router/", "/"):
        for sent in ({}, {"Authorization": "Bearer not-the-token-0123456789"},
                     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}):
            status, resp_headers, body = get(port, path, sent)
            assert status == 401, (path, sent, status)
            assert resp_headers["WWW-Authenticate"].startswith("Bearer")
            assert orjson.loads(body) == {"error": "missing or wrong bearer token"}
            assert no_version(resp_headers)

    status, headers, body = get(port, "/models", AUTH)
    assert status == 200 and "versions" in orjson.loads(body) and no_version(headers)
    status, headers, body = get(port, "/campaigns/x", AUTH)
    assert status == 404 and no_version(headers)
    assert orjson.loads(body) == {"error": "unknown campaign 'x'"}
    for path in ("/healthz", "/readyz", "/metrics"):
        status, headers, _ = get(port, path)
        assert status == 200 and no_version(headers), path
        assert "Server" not in headers

    assert TOKEN not in log_text(deployment, port)


def test_malformed_requests_get_400_and_at_most_one_log_line(deployment: Deployment) -> None:
    deployment.extra_env["SOCIALSTREAM_WEB_TOKEN"] = TOKEN
    assert deployment.cli("topics", "create").returncode == 0
    port = deployment.start_worker()
    assert wait_until(lambda: ready(port, deployment.partitions), timeout=120)
    time.sleep(3)  # let the start-up logging settle
    before = log_text(deployment, port).count("\n")

    long_line = b"GET /models?" + b"q" * 9 * 1024 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    long_header = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"p" * 16 * 1024
                   + b"\r\n\r\n")
    # aiohttp's error message quotes the start of the offending header: here, the token.
    long_auth = (f"GET /models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}".encode()
                 + b"x" * 16 * 1024 + b"\r\n\r\n")
    bad_char = f"GET /models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\x01\r\n\r\n"
    for data in [long_line, long_header] * 9 + [long_auth, bad_char.encode()]:
        head = raw(port, data).split(b"\r\n\r\n")[0].decode()
        assert head.startswith("HTTP/1.0 400 Bad Request"), head
        assert "aiohttp" not in head and "Python" not in head, head

    assert get(port, "/healthz")[0] == 200  # the worker is fine
    text = log_text(deployment, port)
    new = text.splitlines()[before:]
    assert len(new) <= 1, new
    assert "malformed HTTP request from 127.0.0.1" in text
    assert "Traceback" not in text and "LineTooLong: 400" not in text
    assert TOKEN not in text


def test_forwarded_campaign_requests_carry_the_token(deployment: Deployment) -> None:
    """/campaigns/{id} asked of either worker: Faust forwards it to the owner with the
    Authorization header, so the token opens every campaign on both."""
    deployment.extra_env["SOCIALSTREAM_WEB_TOKEN"] = TOKEN
    assert deployment.cli("topics", "create").returncode == 0
    events, truth = simulate(campaigns=8, creatives=3, duration_ms=2 * HOUR_MS, seed=3)
    ports = [deployment.start_worker(), deployment.start_worker()]

    def split() -> bool:
        shares = [owned(p) for p in ports]
        return all(shares) and sum(map(len, shares)) == deployment.partitions

    assert wait_until(split, timeout=120)
    lines = [orjson.dumps(e) for e in events]
    assert deployment.cli("produce", "-", input=b"\n".join(lines)).returncode == 0

    def processed() -> float:
        return sum(sum(by_label(scrape(p), "socialstream_events_total", "type").values())
                   for p in ports)

    assert wait_until(lambda: processed() >= len(lines), timeout=180)
    owners = {p: set(owned(p)) for p in ports}
    campaigns = [c.campaign_id for c in truth.campaigns]
    remote = [(p, c) for p in ports for c in campaigns
              if owner_partition(c, deployment.partitions) not in owners[p]]
    assert remote, "every campaign landed on one worker: the test proves nothing"
    for port, cid in remote:
        status, headers, body = get(port, f"/campaigns/{cid}", AUTH)
        assert status == 200, (port, cid, status, body)
        assert orjson.loads(body)["campaign_id"] == cid and no_version(headers)
        assert get(port, f"/campaigns/{cid}")[0] == 401
    for port in ports:
        assert TOKEN not in log_text(deployment, port)


def test_json_log_format_writes_only_json_lines(deployment: Deployment) -> None:
    deployment.extra_env["SOCIALSTREAM_LOG_FORMAT"] = "json"
    assert deployment.cli("topics", "create").returncode == 0
    port = deployment.start_worker()
    assert wait_until(lambda: ready(port, deployment.partitions), timeout=120)
    assert raw(port, b"GET /" + b"a" * 9 * 1024 + b" HTTP/1.1\r\n\r\n").startswith(
        b"HTTP/1.0 400")
    deployment.stop()  # shutdown logging too

    records = []
    for line in log_text(deployment, port).splitlines():
        if line.strip():
            records.append(orjson.loads(line))  # raises on anything that is not JSON
    assert len(records) > 5
    for rec in records:
        assert {"time", "level", "logger", "message"} <= rec.keys(), rec
        assert rec["time"][:2] == "20" and rec["time"][10] == "T"
    loggers = {rec["logger"] for rec in records}
    assert any(name.startswith("faust") for name in loggers), loggers
    assert any(rec["logger"] == "aiohttp.server" and "malformed HTTP request" in rec["message"]
               for rec in records)
