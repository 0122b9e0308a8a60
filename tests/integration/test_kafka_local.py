"""scripts/kafka-local: one real broker per state folder, found again by status, stopped by PID;
restarted with its data, ports and certificates, or wiped with --fresh."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from tests.conftest import KAFKA_LOCAL

pytestmark = pytest.mark.integration


def run(*args: str, env: dict[str, str] | None = None,
        script: Path = KAFKA_LOCAL) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=300, env=env)


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for its (re)parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_start_is_idempotent_status_finds_it_stop_kills_exactly_it(tmp_path: Path) -> None:
    state = str(tmp_path / "broker")
    first = run("start", "--dir", state)
    assert first.returncode == 0, first.stderr
    bootstrap = first.stdout.strip()
    assert bootstrap.startswith("127.0.0.1:")
    pid = int((tmp_path / "broker" / "broker.pid").read_text())
    try:
        again = run("start", "--dir", state)
        assert again.stdout.strip() == bootstrap
        assert "already running" in again.stderr
        status = run("status", "--dir", state)
        assert status.returncode == 0 and status.stdout.strip() == bootstrap
        listed = subprocess.run(["kcat", "-L", "-b", bootstrap, "-m", "10"], capture_output=True,
                                text=True, timeout=60)
        assert "1 brokers:" in listed.stdout
    finally:
        stopped = run("stop", "--dir", state)
    assert stopped.returncode == 0
    assert f"stopped broker pid {pid}" in stopped.stderr
    assert not alive(pid)
    assert run("status", "--dir", state).returncode == 1


def test_missing_jars_fail_with_the_artifact_named(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    shutil.copytree(KAFKA_LOCAL.parent, scripts)
    pom = scripts / "kafka" / "pom.xml"
    pom.write_text(pom.read_text().replace("<kafka.version>4.1.1<",
                                           "<kafka.version>0.0.1-missing<"))
    result = run("fetch", script=scripts / "kafka-local",
                 env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("kafka-local: error: could not fetch the Kafka jars")
    assert "org.apache.kafka:kafka_2.13:jar:0.0.1-missing" in last


def kcat(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kcat", *args], capture_output=True, text=True, timeout=60,
                          input=input)


async def read_with_scram(sasl_bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=sasl_bootstrap,
                                security_protocol="SASL_PLAINTEXT",
                                sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice",
                                sasl_plain_password="alice-secret", auto_offset_reset="earliest")
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000)
        return [r.value for records in batches.values() for r in records]
    finally:
        await consumer.stop()


def test_restart_keeps_cluster_data_and_ports_fresh_wipes_them(tmp_path: Path) -> None:
    folder = tmp_path / "broker"
    state = str(folder)
    first = run("start", "--sasl", "--tls", "--dir", state)
    assert first.returncode == 0, first.stderr
    bootstrap = first.stdout.strip()
    sasl = (folder / "sasl_bootstrap").read_text().strip()
    ssl = (folder / "ssl_bootstrap").read_text().strip()
    ca = (folder / "ca.pem").read_text()
    tls = ["-X", "security.protocol=ssl", "-X", f"ssl.ca.location={folder / 'ca.pem'}"]
    try:
        assert kcat("-P", "-b", bootstrap, "-t", "kept", input="still here\n").returncode == 0
        pid = int((folder / "broker.pid").read_text())
        assert run("stop", "--keep", "--dir", state).returncode == 0
        assert not alive(pid)
        assert "not 1" in run("start", "--port", "1", "--dir", state).stderr  # not its port

        again = run("start", "--dir", state)  # no --sasl --tls: the kept config still has them
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == bootstrap  # stdout: the address only, the same one
        assert "restarting the cluster kept in" in again.stderr
        assert (folder / "sasl_bootstrap").read_text().strip() == sasl
        assert (folder / "ssl_bootstrap").read_text().strip() == ssl
        assert (folder / "ca.pem").read_text() == ca  # the same CA: clients keep trusting it
        read = kcat("-C", "-b", bootstrap, "-t", "kept", "-e", "-q")
        assert read.stdout == "still here\n", read.stderr
        read = kcat("-C", "-b", ssl, *tls, "-t", "kept", "-e", "-q")
        assert read.stdout == "still here\n", read.stderr
        # SCRAM users live in the cluster metadata: they survive the restart too
        assert asyncio.run(read_with_scram(sasl, "kept")) == [b"still here"]
        refused = run("start", "--fresh", "--dir", state)
        assert refused.returncode == 1 and "stop it before" in refused.stderr

        assert run("stop", "--keep", "--dir", state).returncode == 0
        fresh = run("start", "--fresh", "--dir", state)
        assert fresh.returncode == 0, fresh.stderr
        assert "restarting" not in fresh.stderr
        assert not (folder / "sasl_bootstrap").exists()  # formatted without --sasl this time
        assert not (folder / "ssl_bootstrap").exists() and not (folder / "ca.pem").exists()
        listed = kcat("-L", "-b", fresh.stdout.strip(), "-m", "10")
        assert "1 brokers:" in listed.stdout and '"kept"' not in listed.stdout

        assert run("stop", "--keep", "--dir", state).returncode == 0
        no_tls = run("start", "--tls", "--dir", state)
        assert no_tls.returncode == 1
        assert "without the SSL listener(s): add --fresh" in no_tls.stderr, no_tls.stderr
    finally:
        run("stop", "--dir", state)
    assert not folder.exists()
