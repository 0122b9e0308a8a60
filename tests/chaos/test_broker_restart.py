"""The broker stops and starts again mid-stream (same port, same log dir, as a production broker
restarts) while a worker processes and `socialstream produce` writes: nothing is lost or applied
twice, against the replay of what the topic holds, and the producer's report is true.  If the
worker exits during the outage it is started again, as docker/compose.yaml's restart policy does,
and the figures say so."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.chaos.harness import finish, processed, produce_slowly, settle, traffic
from tests.conftest import KAFKA_LOCAL, Deployment, by_label, scrape, wait_until

pytestmark = pytest.mark.integration


def kafka_local(*args: str) -> str:
    done = subprocess.run([sys.executable, str(KAFKA_LOCAL), *args], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("down_seconds", [15, pytest.param(60, marks=pytest.mark.chaos)])
def test_broker_restart_mid_stream(tmp_path: Path, down_seconds: int) -> None:
    broker = tmp_path / "broker"
    bootstrap = kafka_local("start", "--dir", str(broker))
    dep = Deployment(bootstrap, tmp_path, partitions=2)
    try:
        assert dep.cli("topics", "create").returncode == 0
        keyed = traffic(campaigns=8, hours=12, seed=61)
        port = dep.start_worker()
        producer, fed = produce_slowly(dep, keyed)
        assert wait_until(lambda: processed(port) >= 2000, timeout=120, every=0.1)
        kafka_local("stop", "--keep", "--dir", str(broker))
        stopped = time.monotonic()
        time.sleep(down_seconds)
        assert kafka_local("start", "--dir", str(broker)) == bootstrap
        back = time.monotonic()
        assert fed.result() > stopped, "the producer's input ended before the broker stopped"
        code, report = finish(producer)
        restarted = dep.workers[-1].poll() is not None
        if restarted:  # exited during the outage: started again, as the restart policy does
            print(f"\n  worker exited with {dep.workers[-1].returncode}: "
                  f"{dep.log(port).strip().splitlines()[-1][:300]}")
            port = dep.start_worker()
        figures = settle(f"broker down {down_seconds} s", dep, back)
        print(f"  producer exit {code}: {report}; worker "
              f"{'restarted' if restarted else 'rode it out'}")
        assert figures.exact, figures.line()
        assert code == 0 or "not delivered" in report, report
    finally:
        dep.stop()
        kafka_local("stop", "--dir", str(broker))


def test_a_worker_on_a_broker_that_came_back_empty_is_not_ready(tmp_path: Path) -> None:
    """The broker returns as a fresh cluster on the same port (its data lost): the input topic
    comes back auto-created with one partition and the worker cannot go on.  It must not say it
    is ready (it did: 200 with lag 0 on every partition)."""
    broker = tmp_path / "broker"
    bootstrap = kafka_local("start", "--dir", str(broker))
    dep = Deployment(bootstrap, tmp_path, partitions=2)
    try:
        assert dep.cli("topics", "create").returncode == 0
        port = dep.start_worker()
        assert wait_until(lambda: readyz(port) == 200, timeout=120)
        kafka_local("stop", "--dir", str(broker))  # data gone
        assert kafka_local("start", "--fresh", "--port", bootstrap.rsplit(":", 1)[1],
                           "--dir", str(broker)) == bootstrap
        # Input keeps arriving (auto-creating the topic with the broker's default: 1 partition).
        keyed = traffic(campaigns=4, hours=1, seed=62)
        dep.cli("produce", "-", input=b"\n".join(line for _, line in keyed))
        worker = dep.workers[-1]

        def why() -> set[str]:  # once the broker answers again, or the worker is gone
            try:
                return set(by_label(scrape(port), "socialstream_unready", "reason")) - {
                    "broker_unreachable"}
            except OSError:
                return {"exited"} if worker.poll() is not None else set()
        reasons = wait_until(why, timeout=120, every=1)
        if reasons == {"exited"}:
            # aiokafka's group coordinator can die on the reassignment (an assertion in its
            # routine), which takes the consumer down with it: the worker exits and says so.
            print(f"\n  after an empty broker came back: the worker exited {worker.returncode}")
            assert worker.returncode != 0 and "crash" in dep.log(port)
            return
        status = readyz(port)
        print(f"\n  after an empty broker came back: /readyz {status}, reasons {reasons}")
        assert status == 503 and reasons & {"partitions_mismatch", "stalled"}, reasons
    finally:
        dep.stop()
        kafka_local("stop", "--dir", str(broker))


def readyz(port: int) -> int | None:
    """The HTTP status of /readyz (None: not answering)."""
    try:
        return int(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None
