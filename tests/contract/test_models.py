"""River-style contract checks, the same for every model: pickling, new and missing features,
finite outputs on extreme inputs, deterministic replay, bounded memory."""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from streams.models.engagement import (
    TOPIC_BUCKETS,
    CreativeClickModel,
    PostEngagementModel,
    creative_features,
    post_features,
)
from streams.models.sentiment import CLASSES, SentimentModel
from tests.unit.test_pipeline import ev

WORDS = ["love", "hate", "great", "awful", "ok", "shipping", "price", "cute", "broken", "meh"]


@dataclass
class Contract:
    """How to build, feed and query one model."""

    make: Callable[[], Any]
    sample: Callable[[random.Random, int], Any]  # an input
    label: Callable[[random.Random], Any]
    learn: Callable[[Any, Any, Any], None]
    predict: Callable[[Any, Any], list[float]]  # numbers to compare
    extreme: list[Any]
    odd: list[Any]  # unseen / missing features
    grow: Callable[[Any, int], None]  # learn input number i with a brand-new token or topic
    size: Callable[[Any], int]  # number of weights
    size_cap: int
    grow_steps: int = 200_000  # enough distinct tokens or topics to fill every hash bucket


def sentiment_contract() -> Contract:
    def learn(m: SentimentModel, text: str, y: str) -> None:
        m.learn_one(text, y)

    def predict(m: SentimentModel, text: str) -> list[float]:
        proba = m.predict_proba_one(text)
        return [proba[c] for c in CLASSES]

    def size(m: SentimentModel) -> int:
        return len(m.words.counts)  # token buckets with counts; the Bayesian layer is fixed

    return Contract(
        make=lambda: SentimentModel(n_features=2**12),
        sample=lambda rng, i: " ".join(rng.choices(WORDS, k=6)),
        label=lambda rng: rng.choice(CLASSES),
        learn=learn, predict=predict,
        extreme=["x" * 10_000, "\U0001f600" * 500, " ", "!!!!!!!!!!", "a " * 5000],
        odd=["completely unseen vocabulary here", ""],
        grow=lambda m, i: m.learn_one(f"token{i} love", "positive"),
        size=size, size_cap=2**12,
        grow_steps=100_000)  # 24 tokens a bucket: any bucket stays empty with odds e^-24


def post_contract() -> Contract:
    def sample(rng: random.Random, i: int) -> dict[str, float]:
        return post_features(["instagram", 1_795_687_200_000 + i * 3_600_000,
                              rng.randrange(300), rng.sample(WORDS, 2), "positive"])

    return Contract(
        make=PostEngagementModel,
        sample=sample,
        label=lambda rng: float(rng.randrange(50)),
        learn=lambda m, x, y: m.learn_one(x, y, m.predict_one(x)),
        predict=lambda m, x: [m.predict_one(x)],
        extreme=[post_features(["x", 4_102_444_799_000, 10_000, [f"t{i}" for i in range(50)],
                                None]), {}],
        odd=[{"never=seen": 1.0}, {"platform=tiktok": 1.0}],
        grow=lambda m, i: m.learn_one(post_features(["x", 1_795_687_200_000, 10, [f"topic{i}"],
                                                    None]), 3.0, 0.0),
        size=lambda m: len(m.regressor._idx), size_cap=TOPIC_BUCKETS + 64,
        grow_steps=20 * TOPIC_BUCKETS)  # learning is quadratic in the features: fewer steps


def creative_contract() -> Contract:
    def sample(rng: random.Random, i: int) -> dict[str, float]:
        event = ev(f"i{i}", "impression", 1_795_687_200_000 + i * 60_000, creative_id="cr")
        return creative_features(event, 1_795_687_200_000 - rng.randrange(40) * 86_400_000)

    return Contract(
        make=CreativeClickModel,
        sample=sample,
        label=lambda rng: [rng.randrange(10), 100],
        learn=lambda m, x, y: m.learn_one(x, y[0], y[1], m.predict_one(x)),
        predict=lambda m, x: [m.predict_one(x)],
        extreme=[{"age_days=30": 1.0, "hour=23": 1.0}, {}],
        odd=[{"platform=myspace": 1.0}],
        grow=lambda m, i: m.learn_one({f"age_days={i % 31}": 1.0}, 1, 10, 0.1),
        size=lambda m: len(m.classifier.weights), size_cap=64)


CONTRACTS = {"sentiment": sentiment_contract, "post_engagement": post_contract,
             "creative_ctr": creative_contract}


@pytest.fixture(params=sorted(CONTRACTS))
def contract(request: pytest.FixtureRequest) -> Contract:
    return CONTRACTS[request.param]()


def trained(c: Contract, seed: int = 1, n: int = 300) -> Any:
    rng = random.Random(seed)
    model = c.make()
    for i in range(n):
        c.learn(model, c.sample(rng, i), c.label(rng))
    return model


def probes(c: Contract) -> list[Any]:
    rng = random.Random(99)
    return [c.sample(rng, 10_000 + i) for i in range(20)]


def test_pickle_round_trip_predicts_identically(contract: Contract) -> None:
    model = trained(contract)
    clone = pickle.loads(pickle.dumps(model))
    for x in probes(contract):
        assert contract.predict(clone, x) == contract.predict(model, x)


def test_new_and_missing_features_give_finite_outputs(contract: Contract) -> None:
    model = trained(contract)
    for x in contract.odd:
        assert all(math.isfinite(v) for v in contract.predict(model, x))
    fresh = contract.make()
    for x in probes(contract)[:3] + contract.odd:
        assert all(math.isfinite(v) for v in contract.predict(fresh, x))


def test_extreme_but_valid_inputs_give_finite_outputs(contract: Contract) -> None:
    model = trained(contract)
    rng = random.Random(5)
    for x in contract.extreme:
        assert all(math.isfinite(v) for v in contract.predict(model, x))
        contract.learn(model, x, contract.label(rng))
    assert all(math.isfinite(v) for x in probes(contract) for v in contract.predict(model, x))


def test_replay_with_a_seed_is_deterministic(contract: Contract) -> None:
    one, two = trained(contract, seed=7), trained(contract, seed=7)
    assert [contract.predict(one, x) for x in probes(contract)] == \
        [contract.predict(two, x) for x in probes(contract)]


def test_memory_stays_bounded_after_many_distinct_tokens(contract: Contract) -> None:
    model = contract.make()
    for i in range(contract.grow_steps):
        contract.grow(model, i)
    assert contract.size(model) <= contract.size_cap
    assert len(pickle.dumps(model)) < 4_000_000
