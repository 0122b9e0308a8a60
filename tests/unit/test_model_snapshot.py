"""Model snapshots are data: exact round trips of trained models, refusals of everything else."""

from __future__ import annotations

import base64
import copy
import functools
import os
import pickle
import random
import shlex
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from river.utils import VectorDict

from streams import model_snapshot
from streams.errors import StreamsError
from streams.events import SocialEvent
from streams.model_snapshot import (
    FORMAT_VERSION,
    MAGIC,
    MAX_SNAPSHOT_BYTES,
    REASONS,
    SnapshotRefused,
    dump,
    load,
)
from streams.models.engagement import DAY_MS, creative_features, post_features, post_traits
from streams.models.sentiment import CLASSES, lexicon_proba, lexicon_scores, top
from streams.training import Example, Models, Trainer
from tests.eventgen import PHRASES, PLATFORMS, T0_MS, TOPICS

HELD_OUT_TEXTS = ["honestly the colour is lovely but shipping was slow", "terrible, broke again",
                  "zzz unseen words only", "", "love it love it", "meh price"]


def train(trainer: Trainer, n: int, *, seed: int, start: int = 0) -> None:
    """``n`` examples as the pipeline makes them: features from the models' own feature
    functions, predictions made by the current models before the outcome is learned, labels
    that mostly agree with the lexicon, topics that keep bringing new features, and re-sent
    examples."""
    rng = random.Random(seed)
    m = trainer.models
    previous: Example | None = None
    for i in range(start, start + n):
        ts = T0_MS + i * 7 * 60_000
        text = " ".join([*rng.sample(PHRASES, 2), f"w{rng.randrange(3 * i + 10)}"])
        kind = rng.random()
        if kind < 0.45:
            proba, x = m.sentiment.score(text)
            lexicon = top(lexicon_proba(lexicon_scores(text)))
            label = lexicon if rng.random() < 0.6 else rng.choice(CLASSES)
            example = Example(f"sentiment:ev-{i}", "sentiment", x, label, top(proba))
        elif kind < 0.7:
            topics = (*rng.sample(TOPICS, rng.randrange(3)), f"topic-{rng.randrange(i + 1)}")
            event = SocialEvent(f"ev-{i}", ts, "post", rng.choice(PLATFORMS), "camp-1",
                                post_id=f"p{i}", text=text, topics=topics)
            x = post_features(post_traits(event, m.sentiment.predict_one(text)))
            engagements = int(rng.expovariate(1 / (3 + 10 * ("sale" in topics))))
            example = Example(f"post:camp-1:p{i}:{ts}", "post", x, engagements,
                              m.posts.predict_one(x))
        else:
            event = SocialEvent(f"ev-{i}", ts, "impression", rng.choice(PLATFORMS), "camp-1",
                                creative_id=f"cr-{rng.randrange(6)}")
            x = creative_features(event, ts - rng.randrange(10) * DAY_MS)
            impressions = rng.randrange(1, 60)
            clicks = sum(rng.random() < 0.08 for _ in range(impressions))
            example = Example(f"creative:camp-1:cr:ev-{i}", "creative", x,
                              [clicks, impressions], m.creatives.predict_one(x))
        trainer.learn(example)
        if previous is not None and i % 37 == 0:
            assert not trainer.learn(previous)  # re-sent after a restart: counted, not learned
        previous = example


def predictions(models: Models) -> list[Any]:
    out: list[Any] = [models.sentiment.predict_proba_one(t) for t in HELD_OUT_TEXTS]
    rng = random.Random(99)
    regressor: Any = models.posts.regressor
    for i in range(20):
        event = SocialEvent(f"held-{i}", T0_MS + i * 3_600_000 + 17, "post",
                            PLATFORMS[i % len(PLATFORMS)], "c", post_id="p", text="x" * i,
                            topics=(TOPICS[i % len(TOPICS)], f"topic-{i * 13}"))
        x = post_features(post_traits(event, rng.choice([*CLASSES, None])))
        dist = regressor.predict_one(x, with_dist=True)
        out += [models.posts.predict_one(x), dist.mu, dist.sigma]
        out.append(models.creatives.predict_one(creative_features(event, T0_MS)))
    return out


def state(obj: Any) -> Any:
    """Everything an object graph holds, comparable with ==: floats by their bits, arrays with
    dtype, shape and layout, dicts in order, objects by their attributes."""
    if obj is None or isinstance(obj, bool | int | str | bytes):
        return (type(obj).__name__, obj)
    if isinstance(obj, float):
        return (type(obj).__name__, obj.hex())
    if isinstance(obj, np.ndarray):
        return ("ndarray", obj.dtype.str, obj.shape, obj.flags.c_contiguous,
                obj.flags.f_contiguous, obj.flags.writeable, obj.tobytes())
    if isinstance(obj, VectorDict):
        return ("VectorDict", state(obj.to_dict()))
    if isinstance(obj, dict):
        return (type(obj).__qualname__, repr(getattr(obj, "default_factory", None)),
                [(state(k), state(v)) for k, v in obj.items()])
    if isinstance(obj, list | tuple):
        return (type(obj).__qualname__, [state(v) for v in obj])
    if isinstance(obj, set | frozenset):
        return (type(obj).__qualname__, sorted(map(repr, obj)))
    if isinstance(obj, type | functools.partial):
        return ("callable", repr(obj))
    return (type(obj).__module__, type(obj).__qualname__,
            sorted((k, state(v)) for k, v in vars(obj).items()))


@pytest.fixture(scope="module")
def trained() -> Trainer:
    trainer = Trainer()
    train(trainer, 500, seed=1)
    return trainer


def test_a_trained_trainer_round_trips_exactly_and_keeps_learning_identically() -> None:
    original = Trainer()
    train(original, 400, seed=3)
    data = dump(original, 1234)
    restored, offset = load(data)
    assert offset == 1234
    assert state(restored) == state(original)
    assert list(restored.seen) == list(original.seen) and len(restored.seen) == 400
    assert restored.duplicates == original.duplicates > 0
    assert restored.models.versions() == original.models.versions()
    assert restored.models.lineage == original.models.lineage
    assert predictions(restored.models) == predictions(original.models)
    assert restored.models.report() == original.models.report()
    assert dump(restored, 1234) == dump(original, 1234)  # canonical: nothing drifts

    # Both learn the same stream on: new classes of features and BLR capacity growth included.
    cap = original.models.posts.regressor._cap
    for trainer in (original, restored):
        train(trainer, 400, seed=4, start=400)
    assert original.models.posts.regressor._cap > cap
    assert predictions(restored.models) == predictions(original.models)
    assert restored.models.report() == original.models.report()
    assert restored.models.versions() == original.models.versions()
    assert restored.models.lineage == original.models.lineage
    assert state(restored) == state(original)


@pytest.mark.parametrize("learned", [0, 1, 5, 37])
def test_fresh_and_early_models_round_trip(learned: int) -> None:
    """Empty weights, an empty posterior, classes not seen yet: learned after the round trip."""
    original = Trainer()
    train(original, learned, seed=5)
    restored, offset = load(dump(original, -1))
    assert offset == -1
    assert state(restored) == state(original)
    for trainer in (original, restored):
        train(trainer, 150, seed=6, start=learned)
    assert predictions(restored.models) == predictions(original.models)
    assert restored.models.report() == original.models.report()
    assert state(restored) == state(original)


def test_non_finite_values_round_trip(trained: Trainer) -> None:
    original = copy.deepcopy(trained)
    models = original.models
    models.creatives.classifier.intercept = float("nan")
    models.creatives.log_loss._mean._mean = float("inf")
    stacker = models.sentiment.stacker
    mean, cov = stacker.mean.copy(), stacker.cov.copy()
    mean[2, 0] = float("-inf")
    cov[0, 1] = float("nan")
    stacker.restore(mean, cov, stacker.n)
    models.posts.regressor._eta_arr[0] = float("nan")
    restored, _ = load(dump(original, 7))
    assert state(restored) == state(original)


def test_the_snapshot_is_not_much_larger_than_the_pickle(trained: Trainer) -> None:
    old = zlib.compress(pickle.dumps({"trainer": trained, "offset": 5},
                                     protocol=pickle.HIGHEST_PROTOCOL), 1)
    assert len(dump(trained, 5)) <= 3 * len(old)


def test_the_format_is_tagged_and_versioned(trained: Trainer) -> None:
    data = dump(trained, 5)
    assert data.startswith(MAGIC)
    assert int.from_bytes(data[len(MAGIC):len(MAGIC) + 2], "big") == FORMAT_VERSION == 2
    assert MAX_SNAPSHOT_BYTES == 64 * 1024 * 1024
    assert model_snapshot.MAX_DECOMPRESSED_BYTES == 256 * 1024 * 1024
    assert issubclass(SnapshotRefused, StreamsError)


def refused(data: Any) -> SnapshotRefused:
    with pytest.raises(SnapshotRefused) as info:
        load(data)
    assert info.value.reason in REASONS
    assert info.value.reason in str(info.value)
    return info.value


class Exploit:
    """A pickle that runs a shell command when loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {shlex.quote(str(self.path))}",))


def test_a_pickle_is_refused_and_never_runs(tmp_path: Path, trained: Trainer) -> None:
    target = tmp_path / "pwned"
    payload = pickle.dumps({"trainer": Exploit(target), "offset": 1})
    header = MAGIC + FORMAT_VERSION.to_bytes(2, "big")
    for data in (payload, zlib.compress(payload, 1),  # the old snapshot format
                 header + zlib.compress(payload), header + payload):
        assert refused(data).reason == "unreadable"
    assert not target.exists()
    pickle.loads(payload)  # the payload is live: this is what a worker used to do
    assert target.exists()


def test_unreadable_payloads_are_refused(trained: Trainer) -> None:
    data = dump(trained, 5)
    header = data[:len(MAGIC) + 2]
    rng = random.Random(0)
    for bad in (b"", b"SSMO", header, data[:len(MAGIC) + 1], data[:-1], data[:len(data) // 2],
                data + b"x", rng.randbytes(5000), header + rng.randbytes(5000),
                header + zlib.compress(b"not json"), header + zlib.compress(b"[1, 2]"),
                header + zlib.compress(b"{}"), header + zlib.compress(b'{"offset": 1}')):
        assert refused(bad).reason == "unreadable", bad[:40]
    assert refused("a str, not bytes").reason == "unreadable"


def test_unknown_versions_are_refused(trained: Trainer) -> None:
    body = dump(trained, 5)[len(MAGIC) + 2:]
    for version in (0, 3, 65535):
        error = refused(MAGIC + version.to_bytes(2, "big") + body)
        assert error.reason == "unknown_version" and f"format_version {version}" in str(error)


def test_oversized_payloads_are_refused(monkeypatch: pytest.MonkeyPatch,
                                        trained: Trainer) -> None:
    data = dump(trained, 5)
    assert refused(data + bytes(MAX_SNAPSHOT_BYTES + 1 - len(data))).reason == "oversized"
    # A decompression bomb: a small payload that inflates past the cap (lowered for speed).
    monkeypatch.setattr(model_snapshot, "MAX_DECOMPRESSED_BYTES", 1 << 16)
    bomb = MAGIC + FORMAT_VERSION.to_bytes(2, "big") + zlib.compress(bytes(1 << 22), 9)
    assert len(bomb) < 10_000 and refused(bomb).reason == "oversized"
    with pytest.raises(SnapshotRefused) as info:
        dump(trained, 5)  # never written if it could not be read back
    assert info.value.reason == "oversized"


def document(data: bytes) -> Any:
    return orjson.loads(zlib.decompress(data[len(MAGIC) + 2:]))


def encode(doc: Any) -> bytes:
    return MAGIC + FORMAT_VERSION.to_bytes(2, "big") + zlib.compress(orjson.dumps(doc))


def test_unknown_fields_are_ignored(trained: Trainer) -> None:
    doc = document(dump(trained, 5))
    doc["future"] = {"anything": [1, 2]}
    doc["models"]["posts"]["new_metric"] = 0.5
    restored, _ = load(encode(doc))
    assert state(restored) == state(trained)


def test_a_format_1_snapshot_loads_with_a_fresh_sentiment_state() -> None:
    """tests/unit/data/model-snapshot-v1.bin was written by the release before issue 14 (e83ab8c:
    60 examples of ``train`` with seed 11, offset 42).  Its sentiment weights fit no model any
    more: the sentiment counters are kept, the learned state starts again, the rest loads as it
    was."""
    data = (Path(__file__).parent / "data/model-snapshot-v1.bin").read_bytes()
    assert int.from_bytes(data[len(MAGIC):len(MAGIC) + 2], "big") == 1
    doc = document(data)
    restored, offset = load(data)
    assert offset == 42
    models, fresh = restored.models, Models()
    assert models.versions() == {"models": 60, "sentiment": 27, "post_engagement": 20,
                                 "creative_ctr": 13}
    assert dict(models.sentiment.class_counts) == doc["models"]["sentiment"]["class_counts"]
    assert models.sentiment.quality.report()["macro_recall"] == pytest.approx(0.7063492063)
    assert state(models.sentiment.words) == state(fresh.sentiment.words)
    assert state(models.sentiment.stacker) == state(fresh.sentiment.stacker)
    assert models.posts.regressor._idx and models.creatives.classifier.weights
    assert len(restored.seen) == 60
    train(restored, 80, seed=12, start=60)  # learns on, and round-trips in the current format
    again, _ = load(dump(restored, 43))
    assert state(again) == state(restored) and again.models.sentiment.stacker.n > 0


def f8(values: list[float], shape: list[int]) -> dict[str, Any]:
    raw = np.array(values, dtype="<f8").tobytes()
    return {"dtype": "<f8", "shape": shape, "data": base64.b64encode(raw).decode()}


@pytest.mark.parametrize("path, value", [
    (["offset"], True),
    (["offset"], -2),
    (["trainer", "seen", "dtype"], "<f8"),
    (["trainer", "seen", "dtype"], "O"),
    (["trainer", "seen", "shape"], [3]),
    (["trainer", "seen", "data"], "not base64!"),
    (["models", "lineage"], 12),
    (["models", "posts", "regressor", "cap"], 10_000),
    (["models", "posts", "regressor", "ss"], f8([1.0], [1, 1])),
    (["models", "posts", "regressor", "eta"], f8([1.0, 2.0], [1, 2])),
    (["models", "posts", "regressor", "features"], ["a", "a"]),
    (["models", "posts", "regressor", "m_dirty"], 0),
    (["models", "posts", "mae", "n"], -1.0),
    (["models", "creatives", "roc_auc"], []),
    (["models", "creatives", "classifier", "weights", "values"], f8([1.0], [1])),
    (["models", "creatives", "classifier", "intercept"], "NaN"),
    (["models", "sentiment", "words", "buckets", "dtype"], "<f8"),
    (["models", "sentiment", "words", "buckets"], {"dtype": "<u8", "shape": [2],
                                                   "data": base64.b64encode(bytes(16)).decode()}),
    (["models", "sentiment", "words", "counts", "shape"], [1, 3]),
    (["models", "sentiment", "words", "totals"], [1, 2]),
    (["models", "sentiment", "stacker", "mean"], f8([1.0], [1, 1])),
    (["models", "sentiment", "stacker", "cov"], f8([1.0, 2.0], [1, 2])),
    (["models", "sentiment", "stacker", "n"], -1),
    (["models", "sentiment", "quality", "accuracy", "data", 0, 1, 0], [1, 2, 3]),
    (["models", "sentiment", "class_counts", "positive"], 1.5),
])
def test_wrong_types_and_shapes_are_refused(trained: Trainer, path: list[Any],
                                            value: Any) -> None:
    doc = document(dump(trained, 5))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    error = refused(encode(doc))
    assert error.reason == "unreadable"


def leaves(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from leaves(value, (*path, key))
    elif isinstance(doc, list):
        for i in sorted({0, 1, len(doc) - 1} & set(range(len(doc)))):
            yield from leaves(doc[i], (*path, i))


def test_any_corrupted_field_is_refused_or_loads_a_working_model() -> None:
    """Every field (and every first element of every list) replaced by a value of another type,
    or removed: either refused as unreadable, or a trainer that scores, reports and learns."""
    small = Trainer()
    train(small, 60, seed=8)
    doc = document(dump(small, 5))
    # One path per kind of field: the 10 ROC AUC thresholds' matrices are alike, and so on.
    paths = {tuple(k if isinstance(k, str) else 0 for k in p): p for p in leaves(doc)}
    assert len(paths) > 100
    outcomes = {"loaded": 0, "refused": 0}
    values: tuple[Any, ...] = (None, "x", "nan", -1, 0, 1.5, True, [], {}, [1, 2], ...)
    for path in list(paths.values())[1:]:
        for value in values:
            mutated = copy.deepcopy(doc)
            parent = mutated
            for key in path[:-1]:
                parent = parent[key]
            if value is ...:
                if not isinstance(parent, dict):
                    continue
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
            try:
                trainer, _ = load(encode(mutated))
            except SnapshotRefused as error:
                assert error.reason == "unreadable", (path, value)
                outcomes["refused"] += 1
                continue
            outcomes["loaded"] += 1
            predictions(trainer.models)
            trainer.models.report()
            train(trainer, 12, seed=9, start=60)
    assert outcomes["loaded"] > 0 and outcomes["refused"] > 0
