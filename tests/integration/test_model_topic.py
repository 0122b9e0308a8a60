"""The model topic carries data, never code: a pickle written to it with kcat is refused (counted,
logged) by a running worker and by one started afterwards, and neither runs it."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from tests.conftest import Deployment, by_label, get_json, scrape, wait_until
from tests.eventgen import mixed

pytestmark = pytest.mark.integration


class Payload:
    """Unpickling this runs ``touch PATH``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.path}",)


def refused(port: int) -> dict[str, float]:
    return by_label(scrape(port), "socialstream_model_snapshots_refused_total", "reason")


def test_a_pickle_on_the_model_topic_is_refused_and_never_run(deployment: Deployment) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed (Debian package kcat; scripts/setup installs it)"
    assert deployment.cli("topics", "create").returncode == 0
    port = deployment.start_worker()
    lines = [p.raw for p in mixed(3000, seed=5, invalid_share=0.0)]
    assert deployment.cli("produce", "-", input=b"\n".join(lines)).returncode == 0
    assert wait_until(lambda: get_json(port, "/models")["version"] > 0, timeout=120)
    learned = get_json(port, "/models")["version"]

    marker = deployment.tmp / "pwned"
    payloads = [deployment.tmp / "raw.pickle", deployment.tmp / "framed.pickle"]
    payloads[0].write_bytes(pickle.dumps(Payload(marker)))  # raw, and as old snapshots were
    payloads[1].write_bytes(zlib.compress(pickle.dumps({"trainer": Payload(marker), "offset": 0})))
    # kcat sends each file named as one message (stdin would be split at newline bytes).
    subprocess.run([kcat, "-P", "-b", deployment.bootstrap, "-t", f"models-{deployment.name}",
                    "-k", "models", "-p", "0", *map(str, payloads)], check=True, timeout=60)
    assert wait_until(lambda: refused(port).get("unreadable", 0) >= 2, timeout=60), refused(port)
    later = deployment.start_worker()  # reads the newest snapshot when it starts: the pickle
    assert wait_until(lambda: refused(later).get("unreadable", 0) >= 1, timeout=60)
    assert not marker.exists(), "a pickle from the model topic was executed"
    assert get_json(port, "/models")["version"] >= learned  # still scoring with what it had
    assert all(worker.poll() is None for worker in deployment.workers)
    whole_log = (deployment.tmp / f"worker-{port}.log").read_text(errors="replace")
    assert "refused the model snapshot" in whole_log
