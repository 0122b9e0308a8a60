"""scripts/kafka-local: one real broker per state folder, found again by status, stopped by PID."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
