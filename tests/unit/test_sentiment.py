"""The sentiment model: lexicon cold start, learning past the lexicon, late labels (compact
features, including those written before issue 14), and the Bayesian layer's guards."""

from __future__ import annotations

import math
import random

import pytest

from streams.models.sentiment import (
    CLASSES,
    N_INPUTS,
    BayesSoftmax,
    SentimentModel,
    lexicon_proba,
    lexicon_scores,
    top,
)


def test_a_fresh_model_is_the_lexicon() -> None:
    model = SentimentModel()
    for text in ("I love it", "this is awful", "the parcel arrived on tuesday", ""):
        assert model.predict_proba_one(text) == pytest.approx(lexicon_proba(lexicon_scores(text)))


def test_labels_teach_what_the_lexicon_does_not_know() -> None:
    """'refund' and 'restock' mean nothing to VADER; here they mark negative and positive."""
    rng = random.Random(3)
    model = SentimentModel()
    cues = {"negative": "refund", "neutral": "parcel", "positive": "restock"}
    filler = ["the", "order", "today", "colour", "size", "again", "store"]
    for _ in range(600):
        label = rng.choice(CLASSES)
        model.learn_one(" ".join([cues[label], *rng.sample(filler, 3)]), label)
    assert model.predict_one("refund the order") == "negative"
    assert model.predict_one("restock the order") == "positive"
    assert model.quality.report()["macro_recall"] > 0.9


def test_late_labels_learn_from_compact_features_as_from_the_text() -> None:
    model = SentimentModel()
    for i, text in enumerate(["love it!", "so slow, broken again", "arrived @user?"] * 20):
        model.learn_one(text, CLASSES[(i + 2) % 3])
    proba, x = model.score("honestly the colour is lovely but shipping was slow!")
    again = model.predict_features(SentimentModel.expand(SentimentModel.compact(x)))
    assert again == pytest.approx(proba, abs=1e-3)


def test_compact_features_written_before_the_cues_still_expand_and_learn() -> None:
    """Campaign state may hold texts compacted as [buckets, VADER's four scores]."""
    model = SentimentModel()
    old = [[17, 4242], [0.1, 0.5, 0.4, 0.6]]
    x = SentimentModel.expand(old)
    assert x == {"t17": 1.0, "t4242": 1.0, "vader_neg": 0.1, "vader_pos": 0.5,
                 "vader_neu": 0.4, "vader_compound": 0.6}
    for label in CLASSES * 10:
        model.learn_features(x, label, "neutral")
    assert all(math.isfinite(v) for v in model.predict_features(x).values())
    assert model.stacker.n == 30 and model.words.totals == [20, 20, 20]


def test_unknown_labels_are_scored_but_not_learned() -> None:
    model = SentimentModel()
    _, x = model.score("fine")
    model.learn_features(x, "mixed", "neutral")
    assert model.version == 1 and model.quality.n == 1
    assert model.stacker.n == 0 and not model.class_counts and not model.words.counts


def test_the_bayesian_layer_learns_fast_and_skips_non_finite_updates() -> None:
    rng = random.Random(1)
    layer = BayesSoftmax(N_INPUTS)
    for _ in range(60):
        k = rng.randrange(3)
        z = [rng.gauss(0, 0.3) for _ in range(N_INPUTS)]
        z[k] += 2.0
        layer.learn(z, k)
    probe = [0.0] * N_INPUTS
    probe[2] = 2.0
    assert top(dict(zip(CLASSES, layer.proba(probe), strict=True))) == "positive"
    before = (layer.mean.copy(), layer.cov.copy(), layer.n)
    layer.learn([math.inf] * N_INPUTS, 0)
    layer.learn([math.nan] * N_INPUTS, 1)
    assert (layer.mean == before[0]).all() and (layer.cov == before[1]).all()
    assert layer.n == before[2]
