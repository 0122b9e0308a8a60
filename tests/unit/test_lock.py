"""The lock files match pyproject.toml, offline.

requirements/runtime.txt (what docker/Dockerfile installs) and requirements/dev.txt (what
./scripts/setup, so CI, installs) are written by scripts/lock (uv pip compile). Checked here for
Linux CPython 3.11 on x86_64 and aarch64: every requirement of pyproject.toml (the dependencies;
plus the dev extra for dev.txt) is pinned at a version it allows, and so is every requirement of
every pinned package, extras included (the closure: nothing pip would have to add), read from the
packages' metadata as installed in this virtualenv; every pin is exact and hashed; the runtime pins
are the dev pins; and this virtualenv holds what dev.txt pins. `scripts/lock --check` (run by CI)
additionally re-resolves against PyPI and compares the files byte for byte.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
RUNTIME = ROOT / "requirements" / "runtime.txt"
DEV = ROOT / "requirements" / "dev.txt"
FIX = "run scripts/lock, then scripts/setup"

# The environments the lock is for: CI and developers (x86_64), the Docker image (python:3.11.x on
# amd64 or arm64). Markers of the lock and of the packages' metadata are evaluated in each.
TARGETS = {
    f"linux-{machine}": {
        "implementation_name": "cpython", "implementation_version": "3.11.11",
        "os_name": "posix", "platform_machine": machine,
        "platform_python_implementation": "CPython", "platform_release": "",
        "platform_system": "Linux", "platform_version": "", "python_full_version": "3.11.11",
        "python_version": "3.11", "sys_platform": "linux",
    }
    for machine in ("x86_64", "aarch64")
}


@dataclass(frozen=True)
class Pin:
    name: NormalizedName
    version: Version
    marker: Marker | None
    hashes: tuple[str, ...]
    line: str

    def applies(self, env: dict[str, str]) -> bool:
        return self.marker is None or self.marker.evaluate({**env, "extra": ""})


def read_lock(path: Path) -> list[Pin]:
    """The pins of a requirements file as uv writes it (continuation lines, --hash options)."""
    pins = []
    for line in path.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("-"), f"{path.name}: unexpected option line {line!r}; {FIX}"
        words = line.split()
        first_hash = next((i for i, w in enumerate(words) if w.startswith("--hash=")), len(words))
        requirement = Requirement(" ".join(words[:first_hash]))
        assert requirement.url is None and not requirement.extras, (path.name, line)
        specs = list(requirement.specifier)
        assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, (
            f"{path.name}: {requirement} is not pinned to one version; {FIX}")
        hashes = tuple(w.removeprefix("--hash=") for w in words[first_hash:])
        assert all(w.startswith("--hash=") for w in words[first_hash:]), (path.name, line)
        pins.append(Pin(canonicalize_name(requirement.name), Version(specs[0].version),
                        requirement.marker, hashes, line))
    return pins


def pyproject_requirements(*extras: str) -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


LOCKS = {"runtime": (RUNTIME, ()), "dev": (DEV, ("dev",))}


@pytest.fixture(scope="module", params=sorted(LOCKS))
def lock(request: pytest.FixtureRequest) -> tuple[Path, list[Pin], list[Requirement]]:
    path, extras = LOCKS[request.param]
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing; {FIX}"
    return path, read_lock(path), pyproject_requirements(*extras)


def pinned(pins: Iterable[Pin], name: str, env: dict[str, str]) -> Pin | None:
    matches = [p for p in pins if p.name == canonicalize_name(name) and p.applies(env)]
    assert len(matches) <= 1, f"{name}: several pins apply on one platform: {matches}"
    return matches[0] if matches else None


def test_every_pin_is_exact_hashed_and_listed_once(
        lock: tuple[Path, list[Pin], list[Requirement]]) -> None:
    path, pins, _ = lock
    assert len(pins) > 10, f"{path.name} pins only {len(pins)} packages"
    for pin in pins:
        assert pin.hashes, f"{path.name}: {pin.name} has no --hash; {FIX}"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes), pin.line
    for env_name, env in TARGETS.items():
        names = [p.name for p in pins if p.applies(env)]
        assert len(names) == len(set(names)), f"{path.name}: duplicate pins on {env_name}"
    assert re.search(r"^#    scripts/lock  \(PyPI as of \d{4}-\d\d-\d\dT[\d:]+Z\)$",
                     path.read_text(), re.M), f"{path.name} has no resolution date; {FIX}"


def test_pyproject_requirements_are_pinned_at_allowed_versions(
        lock: tuple[Path, list[Pin], list[Requirement]]) -> None:
    path, pins, requirements = lock
    for env_name, env in TARGETS.items():
        for requirement in requirements:
            if requirement.marker is not None and not requirement.marker.evaluate(
                    {**env, "extra": ""}):
                continue
            pin = pinned(pins, requirement.name, env)
            assert pin is not None, f"{path.name}: {requirement} is not locked ({env_name}); {FIX}"
            assert requirement.specifier.contains(pin.version, prereleases=True), (
                f"{path.name} pins {pin.name}=={pin.version}, pyproject.toml wants "
                f"{requirement}; {FIX}")


def test_faust_is_the_version_the_overrides_are_tested_against() -> None:
    # agents/app.py overrides Faust internals: pyproject.toml pins it and so must both locks.
    for path in (RUNTIME, DEV):
        versions = {str(p.version) for p in read_lock(path) if p.name == "faust-streaming"}
        assert versions == {"0.15.3"}, (path.name, versions)


def requirements_of(name: str, version: Version) -> list[Requirement]:
    """A pinned package's own requirements, from its metadata as installed here."""
    try:
        installed = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{name} is pinned but not installed in this virtualenv; run scripts/setup")
    assert Version(installed.version) == version, (
        f"{name} {installed.version} is installed, the lock pins {version}; run scripts/setup")
    return [Requirement(line) for line in installed.requires or []]


def test_the_lock_is_closed_under_every_pinned_packages_requirements(
        lock: tuple[Path, list[Pin], list[Requirement]]) -> None:
    path, pins, requirements = lock
    here = {k: str(v) for k, v in default_environment().items()}
    for env_name, env in TARGETS.items():
        seen: set[tuple[NormalizedName, frozenset[str]]] = set()
        todo = [(requirement, "socialstream") for requirement in requirements]
        while todo:
            requirement, wanted_by = todo.pop()
            pin = pinned(pins, requirement.name, env)
            assert pin is not None, (
                f"{path.name}: {requirement} (needed by {wanted_by}) is not locked for "
                f"{env_name}; {FIX}")
            assert requirement.specifier.contains(pin.version, prereleases=True), (
                f"{path.name} pins {pin.name}=={pin.version}, {wanted_by} wants {requirement}; "
                f"{FIX}")
            key = (pin.name, frozenset(requirement.extras))
            if key in seen:
                continue
            seen.add(key)
            if not pin.applies(here):  # another platform's package: its metadata is not here
                continue
            for dependency in requirements_of(pin.name, pin.version):
                extras = ["", *requirement.extras]
                if dependency.marker is None or any(
                        dependency.marker.evaluate({**env, "extra": e}) for e in extras):
                    todo.append((dependency, f"{pin.name}=={pin.version}"))
        # And nothing more: a pin that nothing needs on any target is a leftover.
        needed = {name for name, _ in seen}
        unused = {p.name for p in pins if p.applies(env)} - needed
        assert not unused, f"{path.name}: pinned but needed by nothing ({env_name}): {unused}"


def test_runtime_pins_are_the_dev_pins() -> None:
    dev = {(p.name, str(p.marker)): p.version for p in read_lock(DEV)}
    for pin in read_lock(RUNTIME):
        assert dev.get((pin.name, str(pin.marker))) == pin.version, (
            f"runtime.txt pins {pin.name}=={pin.version}, dev.txt "
            f"{dev.get((pin.name, str(pin.marker)))}: tests would not run what ships; {FIX}")


def test_this_virtualenv_holds_the_dev_lock() -> None:
    here = {k: str(v) for k, v in default_environment().items()}
    stale = []
    for pin in read_lock(DEV):
        if not pin.applies(here):
            continue
        try:
            version = Version(metadata.version(pin.name))
        except metadata.PackageNotFoundError:
            stale.append(f"{pin.name} missing")
            continue
        if version != pin.version:
            stale.append(f"{pin.name} {version} (lock: {pin.version})")
    assert not stale, f".venv differs from {DEV.name}: {stale}; run scripts/setup"
