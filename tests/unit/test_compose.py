"""docker/compose.yaml, read by a real Compose implementation: docker-compose (Debian's package,
installed by ./scripts/setup; it validates and normalises a file without any Docker engine).

`docker-compose config -q` must accept the file, with and without the simulator profile; the
invariants below are checked on what `docker-compose config` prints (the merged, normalised model:
YAML anchors and `<<` merges resolved, paths made absolute), so they hold for what Compose runs,
not for a reading of the text.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
PROFILES: dict[str, tuple[str, ...]] = {"default": (), "simulator": ("--profile", "simulator")}


@cache
def docker_compose() -> tuple[str, int]:
    """The docker-compose executable and its major version (1: Python, YAML only; 2: Go, JSON)."""
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is missing: ./scripts/setup installs it (Debian's "
                    "docker-compose package; no Docker engine is needed)", pytrace=False)
    out = subprocess.run([exe, "version", "--short"], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    version = re.match(r"v?(\d+)\.", out)
    assert version, f"docker-compose version --short printed {out!r}"
    return exe, int(version[1])


def compose(*args: str) -> subprocess.CompletedProcess[str]:
    exe, _ = docker_compose()
    return subprocess.run([exe, "--file", str(COMPOSE), *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def yaml_to_data(text: str, exe: str) -> Any:
    """Parse YAML without a YAML library in this virtualenv: docker-compose v1 is a Python
    program that depends on PyYAML, so its own interpreter (its #! line) parses it."""
    try:
        import yaml

        return yaml.safe_load(text)
    except ImportError:
        pass
    shebang = Path(exe).read_bytes()[:200].split(b"\n", 1)[0].decode(errors="replace")
    interpreter = shebang.removeprefix("#!").split()
    assert shebang.startswith("#!") and "python" in shebang, (
        f"cannot parse {exe}'s YAML: no PyYAML here and {exe} is not a Python script")
    done = subprocess.run(
        [*interpreter, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), "
                             "sys.stdout)"],
        input=text, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


@cache
def config(profile: str) -> dict[str, Any]:
    exe, major = docker_compose()
    args = [*PROFILES[profile], "config"] + (["--format", "json"] if major >= 2 else [])
    done = compose(*args)
    assert done.returncode == 0, f"docker-compose {' '.join(args)} failed:\n{done.stderr}"
    data = json.loads(done.stdout) if major >= 2 else yaml_to_data(done.stdout, exe)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), data
    return data


def services(profile: str = "default") -> dict[str, dict[str, Any]]:
    return config(profile)["services"]  # type: ignore[no-any-return]


def mounts(service: dict[str, Any]) -> dict[str, tuple[Path, bool]]:
    """target in the container -> (source on the host, read-only), for v1's short syntax
    ("SRC:DST:ro") and v2's long one alike."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            found[target] = (Path(source), "ro" in mode)
        else:
            found[volume["target"]] = (Path(volume["source"]), bool(volume.get("read_only")))
    return found


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_compose_accepts_the_file(profile: str) -> None:
    args = [*PROFILES[profile], "config", "--quiet"]
    done = compose(*args)
    assert done.returncode == 0, (
        f"docker-compose -f docker/compose.yaml {' '.join(args)}:\n{done.stderr}")
    assert not done.stdout.strip(), done.stdout


def test_workers_restart_unless_stopped_and_wait_for_the_topics() -> None:
    workers = {name: s for name, s in services().items() if s.get("command") == ["worker"]}
    assert sorted(workers) == ["worker-1", "worker-2"], sorted(workers)
    for name, worker in workers.items():
        assert worker.get("restart") == "unless-stopped", (name, worker.get("restart"))
        assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        assert worker["environment"]["SOCIALSTREAM_BOOTSTRAP_SERVERS"] == "kafka:9092"
    # Both publish the same container port on different host ports.
    published = [host_port(p) for w in workers.values() for p in w["ports"]]
    assert len(set(published)) == len(workers), published


def host_port(port: Any) -> tuple[str, str]:
    """(host address, host port) of a published port, in either form docker-compose prints."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), str(port["published"])
    host_ip, published, _ = str(port).rsplit(":", 2) if str(port).count(":") == 2 else (
        "", *str(port).split(":"))
    return host_ip, published


def test_every_published_port_is_bound_to_loopback_only() -> None:
    """The stack is for one host: nothing is reachable from other machines by default."""
    for name, service in services().items():
        for port in service.get("ports", ()):
            assert host_port(port)[0] == "127.0.0.1", (name, port)


def test_one_shot_services_do_not_restart() -> None:
    for name in ("topics", "simulator"):
        assert services("simulator")[name].get("restart") in ("no", None), name


def test_kafka_is_healthchecked_and_the_topics_wait_for_it() -> None:
    kafka = services()["kafka"]
    check = kafka.get("healthcheck", {})
    assert not check.get("disable"), check
    test = check.get("test")
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, check
    assert "kafka-topics.sh" in " ".join(test), test
    assert services()["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_prometheus_mounts_its_config_and_the_alert_rules() -> None:
    found = mounts(services()["prometheus"])
    for name in ("prometheus.yml", "alerts.yml"):
        source, read_only = found.get(f"/etc/prometheus/{name}", (None, False))
        assert source == DOCKER / name, (name, found)
        assert source.is_file() and read_only, (name, source, read_only)


def test_the_simulator_only_runs_with_its_profile() -> None:
    simulator = services("simulator")["simulator"]
    assert simulator.get("profiles") == ["simulator"], simulator.get("profiles")
    assert simulator["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    for name, service in services().items():  # v2 leaves it out; v1 lists it, marked
        assert name != "simulator" or service.get("profiles") == ["simulator"]


def test_the_images_built_here_use_the_repository_dockerfile() -> None:
    built = {name: s["build"] for name, s in services("simulator").items() if "build" in s}
    assert set(built) == {"topics", "worker-1", "worker-2", "simulator"}, sorted(built)
    for name, build in built.items():
        assert Path(build["context"]) == ROOT, (name, build)
        assert (ROOT / build.get("dockerfile", "Dockerfile")).is_file(), (name, build)
