"""Shared fixtures: a real Kafka broker (started by scripts/kafka-local) and worker processes."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from tests.eventgen import is_json, mixed

ROOT = Path(__file__).resolve().parents[1]
KAFKA_LOCAL = ROOT / "scripts" / "kafka-local"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long chaos scenarios run only when a marker expression asks for them (-m chaos)."""
    if config.option.markexpr:
        return
    keep = [item for item in items if item.get_closest_marker("chaos") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real single-node KRaft broker, stopped at the end of the session."""
    state = tmp_path_factory.mktemp("kafka")
    started = subprocess.run([sys.executable, str(KAFKA_LOCAL), "start", "--dir", str(state)],
                             capture_output=True, text=True, timeout=600)
    if started.returncode != 0:
        pytest.fail(f"scripts/kafka-local start failed:\n{started.stderr}", pytrace=False)
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([sys.executable, str(KAFKA_LOCAL), "stop", "--dir", str(state)],
                       capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def kafka_sasl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second broker with a SASL_PLAINTEXT listener (PLAIN and SCRAM, user alice); yields the
    SASL listener's address."""
    state = tmp_path_factory.mktemp("kafka-sasl")
    started = subprocess.run([sys.executable, str(KAFKA_LOCAL), "start", "--sasl", "--dir",
                              str(state)], capture_output=True, text=True, timeout=600)
    if started.returncode != 0:
        pytest.fail(f"scripts/kafka-local start --sasl failed:\n{started.stderr}", pytrace=False)
    try:
        yield (state / "sasl_bootstrap").read_text().strip()
    finally:
        subprocess.run([sys.executable, str(KAFKA_LOCAL), "stop", "--dir", str(state)],
                       capture_output=True, timeout=120)


SCRAM_FIXED_LIBRDKAFKA = (2, 6, 1)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@dataclass(frozen=True)
class Kcat:
    """Debian's ``kcat``, the non-Python client of the end-to-end tests.

    Debian 12's kcat links librdkafka 2.0.2, whose SCRAM client repeats its own nonce in the
    client-final-message (r=<client nonce><client nonce><server nonce>; librdkafka bug fixed in
    2.6.1, confluentinc/librdkafka#4895).  Kafka 4 brokers compare that nonce exactly, as RFC 5802
    asks, and refuse it as "invalid credentials" (older brokers only checked its suffix).  So for
    a SCRAM command this runs the same kcat binary on the newer librdkafka that the
    confluent-kafka wheel (dev extra) ships; every other command uses the stock library.
    """

    stock_librdkafka: str
    scram_env: dict[str, str] | None  # None: the stock library is good enough, or none better

    @property
    def stock_speaks_scram(self) -> bool:
        """Whether Debian's own librdkafka has the SCRAM fix."""
        return _version(self.stock_librdkafka) >= SCRAM_FIXED_LIBRDKAFKA

    def __call__(self, *args: str, input: bytes | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        env = None
        if any("SCRAM" in arg for arg in args):
            if self.scram_env is not None:
                env = self.scram_env
            elif not self.stock_speaks_scram:
                pytest.fail(f"kcat's librdkafka {self.stock_librdkafka} cannot authenticate with "
                            "SCRAM to Kafka 4 (nonce bug, fixed in librdkafka 2.6.1), and no "
                            "newer librdkafka was found: install the dev extra (confluent-kafka)",
                            pytrace=False)
        return subprocess.run(["kcat", *args], input=input, capture_output=True, timeout=timeout,
                              env=env)


@pytest.fixture(scope="session")
def kcat(tmp_path_factory: pytest.TempPathFactory) -> Kcat:
    """Run kcat with arguments; SCRAM commands get a librdkafka that speaks SCRAM to Kafka 4."""
    if shutil.which("kcat") is None:
        pytest.fail("kcat is not installed (Debian package kcat; scripts/setup installs it)",
                    pytrace=False)
    banner = subprocess.run(["kcat", "-V"], capture_output=True, text=True, timeout=30).stdout
    found = re.search(r"librdkafka (\d+\.\d+\.\d+)", banner)
    stock = found.group(1) if found else "0.0.0"
    if _version(stock) >= SCRAM_FIXED_LIBRDKAFKA:
        return Kcat(stock, None)
    spec = importlib.util.find_spec("confluent_kafka")
    for package in (spec.submodule_search_locations or []) if spec else []:
        for library in sorted(Path(package).parent.glob("confluent_kafka.libs/librdkafka*.so*")):
            libdir = tmp_path_factory.mktemp("librdkafka")
            (libdir / "librdkafka.so.1").symlink_to(library)  # the name kcat was linked against
            env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(
                filter(None, [str(libdir), os.environ.get("LD_LIBRARY_PATH")]))}
            banner = subprocess.run(["kcat", "-V"], capture_output=True, text=True, timeout=30,
                                    env=env).stdout
            found = re.search(r"librdkafka (\d+\.\d+\.\d+)", banner)
            if found and _version(found.group(1)) >= SCRAM_FIXED_LIBRDKAFKA:
                return Kcat(stock, env)
    return Kcat(stock, None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Deployment:
    """One isolated socialstream deployment: fresh topic names and consumer group per test."""

    bootstrap: str
    tmp: Path
    partitions: int = 4
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def input_topic(self) -> str:
        return f"events-{self.name}"

    @property
    def dlq_topic(self) -> str:
        return f"events-{self.name}.dlq"

    @property
    def recommendations_topic(self) -> str:
        return f"recs-{self.name}"

    @property
    def state_changelog(self) -> str:
        return f"app-{self.name}-campaign-state-changelog"

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ,
                "SOCIALSTREAM_BOOTSTRAP_SERVERS": self.bootstrap,
                "SOCIALSTREAM_APP_ID": f"app-{self.name}",
                "SOCIALSTREAM_INPUT_TOPIC": self.input_topic,
                "SOCIALSTREAM_DLQ_TOPIC": self.dlq_topic,
                "SOCIALSTREAM_RECOMMENDATIONS_TOPIC": self.recommendations_topic,
                "SOCIALSTREAM_TRAINING_TOPIC": f"training-{self.name}",
                "SOCIALSTREAM_MODEL_TOPIC": f"models-{self.name}",
                "SOCIALSTREAM_PARTITIONS": str(self.partitions),
                "SOCIALSTREAM_DATA_DIR": str(self.tmp / "data"),
                **self.extra_env, **extra}

    def cli(self, *args: str, input: bytes | None = None,
            **extra: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "agents.cli", *args], env=self.env(**extra),
                              input=input, capture_output=True, timeout=300, cwd=ROOT)

    def start_worker(self) -> int:
        """Start a worker process; returns its web port once /healthz answers."""
        port = free_port()
        log = open(self.tmp / f"worker-{port}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen([sys.executable, "-m", "agents.cli", "worker"], cwd=ROOT,
                                env=self.env(SOCIALSTREAM_WEB_PORT=str(port),
                                             SOCIALSTREAM_DATA_DIR=str(self.tmp / f"d{port}")),
                                stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(proc)
        self.ports.append(port)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"worker exited with {proc.returncode}:\n{self.log(port)}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                return port
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"worker did not answer /healthz within 120 s:\n{self.log(port)}")

    def serve_mixed_events(self, seed: int) -> tuple[int, int]:
        """Topics, a worker, and 300 events (some invalid) sent with ``socialstream produce``;
        returns (the worker's port, the valid events) once every valid event is applied and
        every invalid one dead-lettered."""
        created = self.cli("topics", "create")
        assert created.returncode == 0, created.stderr
        port = self.start_worker()
        payloads = [p for p in mixed(400, seed=seed) if is_json(p.raw)][:300]
        sent = self.cli("produce", "-", input=b"\n".join(p.raw for p in payloads) + b"\n")
        assert b"sent 300 events" in sent.stderr, sent.stderr
        valid = sum(p.type is not None for p in payloads)

        def applied() -> float:
            return sum(by_label(scrape(port), "socialstream_events_total", "type").values())

        assert wait_until(lambda: applied() >= valid, 120), self.log(port)
        assert applied() == valid
        dead = self.cli("consume", self.dlq_topic, "--from-beginning", "--timeout", "5")
        assert dead.returncode == 0, dead.stderr
        assert dead.stdout.count(b"\n") == 300 - valid
        return port, valid

    def log(self, port: int) -> str:
        return (self.tmp / f"worker-{port}.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def deployment(kafka: str, tmp_path: Path) -> Iterator[Deployment]:
    dep = Deployment(kafka, tmp_path)
    try:
        yield dep
    finally:
        dep.stop()


def wait_until(check: Callable[[], Any], timeout: float = 180, every: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; the last value otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def get_json(port: int, path: str) -> Any:
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read())


async def latest_by_key(bootstrap: str, topic: str) -> dict[bytes, bytes]:
    """The newest value of every key of a (compacted) topic, read to its current end."""
    return {r.key: r.value for r in await read_to_end(bootstrap, topic)}


async def read_to_end(bootstrap: str, topic: str,
                      isolation_level: str = "read_uncommitted") -> list[Any]:
    """Every record of every partition of ``topic`` up to its current end, in offset order per
    partition."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level=isolation_level)
    await consumer.start()
    try:
        for _ in range(100):
            if consumer.assignment():
                break
            await consumer.getmany(timeout_ms=100)
        tps = list(consumer.assignment())
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records.extend(r for r in batch if r.offset < ends[_tp(r)])
        return records
    finally:
        await consumer.stop()


def _tp(record: Any) -> Any:
    from aiokafka import TopicPartition

    return TopicPartition(record.topic, record.partition)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples of a worker's /metrics as {(name, sorted labels): value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def by_label(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
             label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for (n, labels), value in samples.items()
            if n == name and value}
