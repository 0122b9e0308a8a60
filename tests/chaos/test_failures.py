"""Workers failing and moving under load: kill -9 mid-backlog, 1 -> 2 -> 1 workers with the
training partition moving between them.  Each prints the chaos figures against the offline replay,
and checks the learning lineage: the model the workers end with is the one that learning the
training topic's examples once each, in its order, gives; and it learned as many as the replay.

The short versions run in ./scripts/test; the long ones with ``-m chaos``.
"""

from __future__ import annotations

import asyncio
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from streams.training import Example, Trainer, unpack_examples
from tests.chaos.harness import (
    committed_records,
    finish,
    oracle,
    processed,
    produce,
    produce_slowly,
    settle,
    traffic,
)
from tests.conftest import Deployment, get_json, wait_until

pytestmark = pytest.mark.integration


def applied(port: int, at_least: int) -> bool:
    return processed(port) >= at_least


def training_lineage(dep: Deployment) -> tuple[int, str]:
    """(version, lineage) of learning the training topic once each, in its order."""
    trainer = Trainer()
    for record in asyncio.run(committed_records(dep.bootstrap, f"training-{dep.name}")):
        for example in unpack_examples(record.value):
            trainer.learn(Example.from_bytes(example))
    return trainer.models.version, trainer.models.lineage


def check_lineage(dep: Deployment, port: int, replay_version: int) -> None:
    version, lineage = training_lineage(dep)
    assert version == replay_version, (version, replay_version)  # no example lost or doubled
    models = wait_until(lambda: (m := get_json(port, "/models"))["lineage"] == lineage and m,
                        timeout=120)
    assert models, (get_json(port, "/models"), version, lineage)
    print(f"  model version {version}, lineage {lineage} (training topic and worker agree)")


def replay_version(dep: Deployment) -> int:
    records = asyncio.run(committed_records(dep.bootstrap, dep.input_topic))
    return oracle(records, dep.partitions).model_version


@pytest.mark.parametrize("kills", [2, pytest.param(5, marks=pytest.mark.chaos)])
def test_kill_9_mid_backlog(deployment: Deployment, kills: int) -> None:
    deployment.partitions = 2
    assert deployment.cli("topics", "create").returncode == 0
    keyed = traffic(campaigns=8, hours=3 * kills, seed=51)
    port = deployment.start_worker()
    with ThreadPoolExecutor(1) as pool:
        producing = pool.submit(produce, deployment, keyed, "--batch-size", "5")
        for _ in range(kills):
            # Mid-backlog: past a commit, with events applied since (re-read after the kill).
            assert wait_until(partial(applied, port, 3000), timeout=180, every=0.05)
            deployment.workers[-1].send_signal(signal.SIGKILL)
            deployment.workers[-1].wait()
            killed = time.monotonic()
            port = deployment.start_worker()
        producing.result()
    figures = settle(f"kill -9 x{kills}", deployment, killed)
    assert figures.exact, figures.line()
    check_lineage(deployment, port, replay_version(deployment))


@pytest.mark.parametrize("rounds", [1, pytest.param(3, marks=pytest.mark.chaos)])
def test_one_two_one_workers_under_load(deployment: Deployment, rounds: int) -> None:
    """Each round a new worker joins (1 -> 2) and the older one leaves (2 -> 1), as in a rolling
    restart: every partition, the training partition included, moves to the newcomer."""
    deployment.partitions = 4
    assert deployment.cli("topics", "create").returncode == 0
    keyed = traffic(campaigns=8, hours=8 * rounds, seed=52)
    port = deployment.start_worker()
    producer, _ = produce_slowly(deployment, keyed, per_second=500)
    for _ in range(rounds):
        assert wait_until(partial(applied, port, 2000), timeout=180, every=0.1)
        older = deployment.workers[-1]
        port = deployment.start_worker()  # 1 -> 2: some partitions move to the newcomer
        assert wait_until(partial(applied, port, 500), timeout=180, every=0.1)
        older.send_signal(signal.SIGTERM)  # 2 -> 1: the rest follow, the trainer too
        older.wait(timeout=60)
        moved = time.monotonic()
    assert finish(producer)[0] == 0
    figures = settle(f"1 -> 2 -> 1 workers x{rounds}", deployment, moved)
    assert figures.exact, figures.line()
    logs = [(deployment.tmp / f"worker-{p}.log").read_text(errors="replace")
            for p in deployment.ports[1:]]
    restored = sum("trainer restored at model version" in log for log in logs)
    fresh = sum("the trainer starts from new models" in log for log in logs)
    print(f"  the trainer moved to {restored + fresh} of {rounds} newcomers ({restored} from a "
          f"snapshot, {fresh} from new models, re-learning the training topic)")
    snapshots = len(asyncio.run(committed_records(deployment.bootstrap,
                                                  f"models-{deployment.name}")))
    print(f"  model snapshots published: {snapshots}")
    assert restored + fresh == rounds  # the training partition moved every round
    check_lineage(deployment, port, replay_version(deployment))
