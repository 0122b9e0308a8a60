"""TLS end to end on a real broker with SSL and SASL_SSL listeners (scripts/kafka-local --tls
--sasl, a throwaway CA): a worker and every CLI command trust the CA they are given, and so does
kcat (librdkafka); a CA that did not sign the broker's certificate is one clear line."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import KAFKA_LOCAL, Deployment, Kcat
from tests.eventgen import is_json, mixed

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class TlsBroker:
    ssl: str  # address of the SSL listener
    sasl_ssl: str  # address of the SASL_SSL listener (PLAIN and SCRAM, user alice)
    ca: Path  # the CA that signed the broker's certificate


@pytest.fixture(scope="session")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    state = tmp_path_factory.mktemp("kafka-tls")
    started = subprocess.run([sys.executable, str(KAFKA_LOCAL), "start", "--tls", "--sasl",
                              "--dir", str(state)], capture_output=True, text=True, timeout=600)
    if started.returncode != 0:
        pytest.fail(f"scripts/kafka-local start --tls --sasl failed:\n{started.stderr}",
                    pytrace=False)
    try:
        yield TlsBroker(ssl=(state / "ssl_bootstrap").read_text().strip(),
                        sasl_ssl=(state / "sasl_ssl_bootstrap").read_text().strip(),
                        ca=state / "ca.pem")
    finally:
        subprocess.run([sys.executable, str(KAFKA_LOCAL), "stop", "--dir", str(state)],
                       capture_output=True, timeout=120)


def settings_for(broker: TlsBroker, listener: str, ca: Path | None = None) -> dict[str, str]:
    env = {"SOCIALSTREAM_SECURITY_PROTOCOL": listener,
           "SOCIALSTREAM_SSL_CAFILE": str(ca or broker.ca)}
    if listener == "SASL_SSL":
        env.update(SOCIALSTREAM_SASL_MECHANISM="SCRAM-SHA-512", SOCIALSTREAM_SASL_USERNAME="alice",
                   SOCIALSTREAM_SASL_PASSWORD="alice-secret")
    return env


def deployment(broker: TlsBroker, listener: str, tmp: Path, ca: Path | None = None) -> Deployment:
    address = broker.ssl if listener == "SSL" else broker.sasl_ssl
    return Deployment(address, tmp, extra_env=settings_for(broker, listener, ca))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_certificate_names_loopback_by_address_and_name(tls_broker: TlsBroker, host: str) -> None:
    port = int(tls_broker.ssl.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(tls_broker.ca))  # verifies chain and name
    with socket.create_connection((host, port), timeout=10) as sock, \
            context.wrap_socket(sock, server_hostname=host) as tls:
        cert = tls.getpeercert()
    assert cert is not None
    names = cert["subjectAltName"]
    assert ("IP Address", "127.0.0.1") in names and ("DNS", "localhost") in names


def test_worker_over_ssl(tls_broker: TlsBroker, tmp_path: Path) -> None:
    dep = deployment(tls_broker, "SSL", tmp_path)
    try:
        dep.serve_mixed_events(seed=11)
    finally:
        dep.stop()


@pytest.mark.parametrize("listener", ["SSL", "SASL_SSL"])
def test_every_cli_command(tls_broker: TlsBroker, tmp_path: Path, listener: str) -> None:
    dep = deployment(tls_broker, listener, tmp_path)
    created = dep.cli("topics", "create")
    assert created.returncode == 0, created.stderr
    assert f"{dep.input_topic}: created (4 partitions)" in created.stdout.decode()

    payloads = [p.raw for p in mixed(200, seed=12) if is_json(p.raw)][:150]
    produced = dep.cli("produce", "-", input=b"\n".join(payloads) + b"\n")
    simulated = dep.cli("simulate", "--to-kafka", "--campaigns", "2", "--creatives", "2",
                        "--duration", "30m", "--seed", "3")
    messages = 0
    for result, events in ((produced, "150"), (simulated, r"\d+")):
        assert result.returncode == 0, result.stderr
        summary = re.search(rf"sent {events} events in (\d+) messages, all acknowledged".encode(),
                            result.stderr)
        assert summary, result.stderr
        messages += int(summary.group(1))

    consumed = dep.cli("consume", dep.input_topic, "--from-beginning", "--timeout", "3")
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.count(b"\n") == messages
    assert f"{messages} messages".encode() in consumed.stderr


def kcat_security(broker: TlsBroker, listener: str) -> tuple[str, list[str]]:
    """The listener's address and kcat's settings for it."""
    if listener == "SSL":
        return broker.ssl, ["-X", "security.protocol=ssl", "-X", f"ssl.ca.location={broker.ca}"]
    return broker.sasl_ssl, ["-X", "security.protocol=sasl_ssl",
                             "-X", f"ssl.ca.location={broker.ca}",
                             "-X", "sasl.mechanism=SCRAM-SHA-512",
                             "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret"]


@pytest.mark.parametrize("listener", ["SSL", "SASL_SSL"])
def test_kcat_produces_and_consumes(tls_broker: TlsBroker, listener: str, kcat: Kcat) -> None:
    address, security = kcat_security(tls_broker, listener)
    topic = f"kcat-{listener.lower()}-{uuid.uuid4().hex[:8]}"
    lines = b"".join(f"c{i}\t{{\"n\": {i}}}\n".encode() for i in range(50))
    sent = kcat("-P", "-b", address, *security, "-t", topic, "-K", "\t", input=lines)
    assert sent.returncode == 0, sent.stderr
    read = kcat("-C", "-b", address, *security, "-t", topic, "-e", "-q", "-f", "%k\t%s\n")
    assert read.returncode == 0, read.stderr
    assert sorted(read.stdout.splitlines()) == sorted(lines.splitlines())


@pytest.mark.parametrize("listener", ["SSL", "SASL_SSL"])
def test_wrong_ca_is_one_clear_line(tls_broker: TlsBroker, tmp_path: Path, listener: str) -> None:
    other = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=some other CA", "-keyout", str(tmp_path / "other-ca.key"),
                    "-out", str(other)], check=True, capture_output=True, timeout=60)
    dep = deployment(tls_broker, listener, tmp_path, ca=other)
    started = time.monotonic()
    result = dep.cli("topics", "create")
    assert time.monotonic() - started < 60
    stderr = result.stderr.decode()
    assert result.returncode == 2
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("socialstream")]
    assert errors == [stderr.strip().splitlines()[-1]]
    # e.g. "...: TLS certificate verification failed: self-signed certificate in certificate
    # chain (is SOCIALSTREAM_SSL_CAFILE the CA that signed the broker's certificate?)"
    assert errors[0].startswith(
        f"socialstream topics: error: cannot connect to Kafka at {dep.bootstrap} ({listener}): "
        "TLS certificate verification failed: ")
    assert errors[0].endswith(
        "(is SOCIALSTREAM_SSL_CAFILE the CA that signed the broker's certificate?)")
