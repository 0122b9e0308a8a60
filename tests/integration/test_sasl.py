"""The connection settings reach every client: a worker and the CLI on a SASL listener; and kcat
(librdkafka, a non-Python client) produces what the worker applies and reads what it wrote."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Deployment, Kcat, by_label, scrape, wait_until
from tests.eventgen import is_json, mixed

pytestmark = pytest.mark.integration


def sasl(mechanism: str, password: str = "alice-secret") -> dict[str, str]:
    return {"SOCIALSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SOCIALSTREAM_SASL_MECHANISM": mechanism,
            "SOCIALSTREAM_SASL_USERNAME": "alice", "SOCIALSTREAM_SASL_PASSWORD": password}


def kcat_sasl(mechanism: str) -> list[str]:
    return ["-X", "security.protocol=SASL_PLAINTEXT", "-X", f"sasl.mechanism={mechanism}",
            "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret"]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_worker_cli_and_kcat_authenticate(kafka_sasl: str, tmp_path: Path, mechanism: str,
                                          kcat: Kcat) -> None:
    dep = Deployment(kafka_sasl, tmp_path)
    dep.extra_env = sasl(mechanism)
    try:
        port, valid = dep.serve_mixed_events(seed=4)

        # kcat over the same mechanism: keyed events in, the worker applies them, the dead
        # letters of both producers read back out
        more = [p for p in mixed(300, seed=5, start=10_000) if is_json(p.raw)][:200]
        keyed = b"".join((p.campaign_id or "x").encode() + b"\t" + p.raw + b"\n" for p in more)
        sent_kcat = kcat("-P", "-b", kafka_sasl, *kcat_sasl(mechanism), "-t", dep.input_topic,
                         "-K", "\t", input=keyed)
        assert sent_kcat.returncode == 0, sent_kcat.stderr
        valid_more = sum(p.type is not None for p in more)
        applied = wait_until(lambda: sum(by_label(scrape(port), "socialstream_events_total",
                                                  "type").values()) >= valid + valid_more, 120)
        assert applied, dep.log(port)
        assert sum(by_label(scrape(port), "socialstream_events_total", "type").values()) == (
            valid + valid_more)
        invalid = 300 - valid + 200 - valid_more

        letters: list[bytes] = []

        def all_dead_letters() -> bool:
            read = kcat("-C", "-b", kafka_sasl, *kcat_sasl(mechanism), "-t", dep.dlq_topic, "-e",
                        "-q", "-f", "%s\n")
            assert read.returncode == 0, read.stderr
            letters[:] = read.stdout.splitlines()
            return len(letters) >= invalid

        wait_until(all_dead_letters, 60)
        assert len(letters) == invalid
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


def test_stock_librdkafka_fails_only_scram(kafka_sasl: str, kcat: Kcat) -> None:
    """Why the kcat fixture runs SCRAM on another librdkafka: Debian 12's (2.0.2) sends the
    client nonce twice in its client-final-message, which Kafka 4 refuses as invalid credentials,
    while PLAIN with the same user and password passes."""
    if kcat.stock_speaks_scram:
        pytest.skip(f"kcat's librdkafka {kcat.stock_librdkafka} has the SCRAM fix")

    def stock(mechanism: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kcat", "-L", "-b", kafka_sasl, *kcat_sasl(mechanism), "-m", "3"],
                              capture_output=True, text=True, timeout=60)

    assert "1 brokers:" in stock("PLAIN").stdout
    refused = stock("SCRAM-SHA-512")
    assert refused.returncode != 0
    assert "Authentication failed during authentication due to invalid credentials with SASL " \
        "mechanism SCRAM-SHA-512" in refused.stderr
