"""The policy's output pinned: two simulated days replayed offline must give exactly the
recommendations (every field, in order) and the final campaign state that the fixtures hold.

Refactors of streams/policy/ (issue 14: the split by rule family, typed state records) must not
change a single recommendation id, number or sentence; this test is what shows they did not.
When behaviour is *meant* to change, regenerate the fixtures deliberately and say why in the
commit:

    .venv/bin/python -m tests.unit.test_policy_pinned --write

The fixtures are gzipped JSON lines written with a fixed gzip header, so regenerating identical
content leaves them byte for byte unchanged (a `git diff` then shows only what really changed).
"""

from __future__ import annotations

import gzip
import itertools
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import msgspec
import orjson
import pytest

import streams.replay
from streams.pipeline import Pipeline
from streams.policy import ACTIONS, Policy, campaign_view
from streams.replay import ReplayResult, replay
from streams.simulator import HOUR_MS, simulate
from streams.training import Models

SEEDS: Final = (1, 5)
CAMPAIGNS: Final = 8
CREATIVES: Final = 4
DURATION_MS: Final = 24 * HOUR_MS
DATA: Final = Path(__file__).resolve().parent / "data"
RECOMMENDATIONS: Final = DATA / "recommendations-pinned.jsonl.gz"
CAMPAIGN_STATES: Final = DATA / "campaigns-pinned.jsonl.gz"
REGENERATE: Final = ("if the change is meant, regenerate: "
                     ".venv/bin/python -m tests.unit.test_policy_pinned --write")


def day(seed: int) -> Iterator[bytes]:
    events, _ = simulate(CAMPAIGNS, CREATIVES, DURATION_MS, seed)
    return (orjson.dumps(e) for e in events)


def run() -> tuple[list[bytes], list[bytes]]:
    """(every recommendation as the worker publishes it, seed after seed; then per seed and
    campaign its final live view and policy memory: what a snapshot carries forward)."""
    recommendations: list[bytes] = []
    campaigns: list[bytes] = []
    for seed in SEEDS:
        result = replay(day(seed), emit=recommendations.append)
        for cid, state in sorted(result.pipeline.store.campaigns.items()):
            campaigns.append(orjson.dumps({"seed": seed, "campaign_id": cid,
                                           "view": campaign_view(state),
                                           "policy": msgspec.to_builtins(state.memory)}))
    return recommendations, campaigns


def read(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).splitlines()


def write(path: Path, lines: list[bytes]) -> None:
    data = b"".join(line + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))


@pytest.fixture(scope="module")
def current() -> tuple[list[bytes], list[bytes]]:
    return run()


def first_difference(name: str, got: list[bytes], pinned: list[bytes],
                     differing: list[int] | None = None) -> str:
    """One readable difference instead of a diff of hundreds of long JSON lines."""
    if differing is None:
        differing = [i for i, (a, b) in enumerate(zip(got, pinned, strict=False)) if a != b]
    head = (f"{name}: {len(got)} lines now, {len(pinned)} pinned; "
            f"{len(differing)} of the common ones differ")
    if not differing:
        return f"{head}; {REGENERATE}"
    i = differing[0]
    return (f"{head}; the first at line {i + 1}:\n  now:    {got[i].decode()}\n"
            f"  pinned: {pinned[i].decode()}\n{REGENERATE}")


def test_a_simulated_day_gives_the_pinned_recommendations(
        current: tuple[list[bytes], list[bytes]]) -> None:
    got, pinned = current[0], read(RECOMMENDATIONS)
    assert got == pinned, first_difference("recommendations", got, pinned)


def test_the_pinned_days_exercise_every_action() -> None:
    assert {orjson.loads(line)["action"] for line in read(RECOMMENDATIONS)} == set(ACTIONS)


def same(a: Any, b: Any) -> bool:
    """Equal JSON values, floats to 1e-9 relative: the post engagement model (River's
    BayesianLinearRegression) goes through numpy's BLAS, whose kernels differ by CPU in the last
    bits (AVX-512 machines gave topic lifts 1e-15 away from the pinned ones)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def test_a_simulated_day_leaves_the_pinned_campaign_state(
        current: tuple[list[bytes], list[bytes]]) -> None:
    got, pinned = current[1], read(CAMPAIGN_STATES)
    differing = [i for i, (a, b) in enumerate(zip(got, pinned, strict=False))
                 if not same(orjson.loads(a), orjson.loads(b))]
    assert len(got) == len(pinned) and not differing, first_difference(
        "campaign views and policy memory", got, pinned, differing)


def test_dry_run_changes_only_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first hours of seed 1 again with a dry-run policy: the same recommendations, each
    marked not for automation."""
    def dry(models: Models | None = None) -> Pipeline:
        return Pipeline(models, policy=Policy(dry_run=True))

    monkeypatch.setattr(streams.replay, "Pipeline", dry)
    got: list[bytes] = []
    result: ReplayResult = replay(itertools.islice(day(SEEDS[0]), 30_000), emit=got.append)
    assert result.accepted == 30_000 and len(got) >= 20
    expected = []
    for line in read(RECOMMENDATIONS)[:len(got)]:
        rec = orjson.loads(line)
        assert rec["dry_run"] is False
        expected.append({**rec, "dry_run": True})
    assert [orjson.loads(line) for line in got] == expected


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: {sys.executable} -m tests.unit.test_policy_pinned --write")
    recs, states = run()
    DATA.mkdir(exist_ok=True)
    write(RECOMMENDATIONS, recs)
    write(CAMPAIGN_STATES, states)
    print(f"wrote {len(recs)} recommendations to {RECOMMENDATIONS} and {len(states)} campaign "
          f"states to {CAMPAIGN_STATES}", file=sys.stderr)
