"""Engagement of posts and creatives: River learners that predict when a post or creative is seen
and learn when its outcome is known (never guessed).

The waiting between the two (pending posts, open impression windows) is campaign state
(streams/state.py), so it is durable with the campaign and learning stays in one lineage.
- A post: predicted engagement (reactions + comments + shares within ``POST_HORIZON_MS`` of
  posting), learned in log space by Bayesian linear regression, scored with MAE on counts.
- A creative: P(click) of its impressions, predicted when a window of impressions opens, learned
  from the window's clicks and non-clicks as weighted examples, scored with log loss and ROC AUC.
"""

from __future__ import annotations

import math
import zlib
from datetime import UTC, datetime
from typing import Any, Final

from river import linear_model, metrics, optim

from streams.events import SocialEvent

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS
# Most organic engagement of a post arrives within hours of posting; six hours makes a post's
# outcome known the same day, so the model learns from this morning's posts for tonight's.
POST_HORIZON_MS: Final = 6 * HOUR_MS
# The post model keeps a dense posterior over its features (quadratic in their number): topics are
# hashed into few buckets to bound it.
TOPIC_BUCKETS: Final = 256
Features = dict[str, float]


def time_features(ts_ms: int) -> Features:
    moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return {f"hour={moment.hour}": 1.0, f"weekday={moment.weekday()}": 1.0}


def post_traits(event: SocialEvent, sentiment: str | None) -> list[Any]:
    """What the post features are built from, compact enough to wait in campaign state."""
    return [event.platform, event.ts_ms, len(event.text or ""),
            [t.lower() for t in event.topics[:10]], sentiment]


def daily_cycle(ts_ms: int) -> Features:
    """Time of day as three harmonics: a smooth daily curve learnable from a few dozen posts
    (24 separate hour weights need several posts per hour first)."""
    angle = 2 * math.pi * (ts_ms % DAY_MS) / DAY_MS
    return {f"{fn.__name__}{k}": fn(k * angle) for k in (1, 2, 3) for fn in (math.sin, math.cos)}


def post_features(traits: list[Any]) -> Features:
    """Platform, time of day, weekday, text length, topics and sentiment of a post."""
    platform, ts_ms, text_length, topics, sentiment = traits
    x = {"bias": 1.0, f"platform={platform}": 1.0, **time_features(ts_ms), **daily_cycle(ts_ms),
         "log_text_length": math.log1p(text_length)}
    # Topics are hashed into TOPIC_BUCKETS weights: new topics never grow the model.
    x.update({f"topic={zlib.crc32(t.encode()) % TOPIC_BUCKETS}": 1.0 for t in topics})
    if sentiment is not None:
        x[f"sentiment={sentiment}"] = 1.0
    return x


def creative_features(event: SocialEvent, first_seen_ms: int) -> Features:
    """Platform, hour, weekday and age (days since first seen, capped at 30) of a creative."""
    age_days = min(max(event.ts_ms - first_seen_ms, 0) // DAY_MS, 30)
    return {f"platform={event.platform}": 1.0, **time_features(event.ts_ms),
            f"age_days={age_days}": 1.0}


class PostEngagementModel:
    """Engagement count of a post within the horizon.

    Bayesian linear regression rather than SGD: a campaign posts a few times a day, and the exact
    posterior is useful after tens of posts, where SGD's predictions were still flat across hours
    (measured on a simulated day: schedule_post never fired). No learning rate to tune.
    """

    def __init__(self) -> None:
        self.regressor = linear_model.BayesianLinearRegression(alpha=1.0, beta=1.0)
        self.mae = metrics.MAE()
        self.n = 0
        self.version = 0

    def predict_one(self, x: Features) -> float:
        return max(math.expm1(min(self.regressor.predict_one(x), 30.0)), 0.0)

    def learn_one(self, x: Features, engagements: float, predicted: float) -> None:
        self.mae.update(engagements, predicted)
        self.regressor.learn_one(x, math.log1p(engagements))
        self.n += 1
        self.version += 1

    def report(self) -> dict[str, Any]:
        return {"n": self.n, "mae": float(self.mae.get())}


class CreativeClickModel:
    """Click probability of a creative's impressions."""

    def __init__(self, learning_rate: float = 0.05) -> None:
        self.classifier = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate))
        self.log_loss = metrics.LogLoss()
        self.roc_auc = metrics.ROCAUC()
        self.n = 0
        self.version = 0

    def predict_one(self, x: Features) -> float:
        return float(self.classifier.predict_proba_one(x)[True])

    def learn_one(self, x: Features, clicks: int, impressions: int, predicted: float) -> None:
        clicks = min(clicks, impressions)
        for label, weight in ((True, clicks), (False, impressions - clicks)):
            if weight:
                self.log_loss.update(label, predicted, weight)
                self.roc_auc.update(label, predicted, weight)
                # One window weighs one step in total, however many impressions it had.
                self.classifier.learn_one(x, label, weight / impressions)
        self.n += 1
        self.version += 1

    def report(self) -> dict[str, Any]:
        return {"n": self.n, "log_loss": float(self.log_loss.get()),
                "roc_auc": float(self.roc_auc.get())}
