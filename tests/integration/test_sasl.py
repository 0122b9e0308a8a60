"""The connection settings reach every client: a worker and the CLI on a SASL listener."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import Deployment, by_label, scrape
from tests.eventgen import is_json, mixed

pytestmark = pytest.mark.integration


def sasl(mechanism: str, password: str = "alice-secret") -> dict[str, str]:
    return {"SOCIALSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SOCIALSTREAM_SASL_MECHANISM": mechanism,
            "SOCIALSTREAM_SASL_USERNAME": "alice", "SOCIALSTREAM_SASL_PASSWORD": password}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_worker_and_cli_authenticate(kafka_sasl: str, tmp_path: Path, mechanism: str) -> None:
    dep = Deployment(kafka_sasl, tmp_path)
    dep.extra_env = sasl(mechanism)
    try:
        created = dep.cli("topics", "create")
        assert created.returncode == 0, created.stderr
        port = dep.start_worker()
        payloads = [p for p in mixed(400, seed=4) if is_json(p.raw)][:300]
        sent = dep.cli("produce", "-", input=b"\n".join(p.raw for p in payloads) + b"\n")
        assert b"sent 300 events" in sent.stderr, sent.stderr
        valid = sum(p.type is not None for p in payloads)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen = by_label(scrape(port), "socialstream_events_total", "type")
            if sum(seen.values()) >= valid:
                break
            time.sleep(0.5)
        assert sum(seen.values()) == valid
        dead = dep.cli("consume", dep.dlq_topic, "--from-beginning", "--timeout", "5")
        assert dead.stdout.count(b"\n") == 300 - valid
    finally:
        dep.stop()


def test_wrong_password_is_one_clear_line(kafka_sasl: str, tmp_path: Path) -> None:
    dep = Deployment(kafka_sasl, tmp_path)
    dep.extra_env = sasl("SCRAM-SHA-256", password="wrong")
    result = dep.cli("topics", "create")
    assert result.returncode == 2
    last = result.stderr.decode().strip().splitlines()[-1]
    assert last.startswith(f"socialstream topics: error: cannot connect to Kafka at {kafka_sasl}")
    assert "SaslAuthenticationFailed" in result.stderr.decode()
