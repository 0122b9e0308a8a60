"""Progressive sentiment quality on the 2,000 TweetEval dev tweets in stream order, test-then-train.

    .venv/bin/python -m bench.quality [--data ../shared/data/tweeteval-val] [--curve] [--tune]

Each tweet is a comment event carrying its label, run through socialstream's pipeline and trainer
(predict, then learn).  Next to it, in the same run: majority class (online), the VADER lexicon
alone, and plain River BagOfWords | MultinomialNB, all test-then-train on the same stream.

Tweets 1-1,000 are the tune part: the sentiment model's hyperparameters were chosen by looking at
them only (``--tune`` re-runs that sweep, on them only).  Reported on the rest: tweets 1,001-2,000
as the stream goes on (the models learned 1-1,000 first), the same tweets with every model started
cold at 1,001, and all 2,000 in stream order.  Tweets 1-200 show the cold start, where the lexicon
prior does most of the work.  ``--curve`` adds the cumulative figures every 250 tweets.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import orjson
from river import feature_extraction, metrics, naive_bayes

from streams.events import SocialEvent, decode
from streams.models.sentiment import SentimentModel, lexicon_scores, top
from streams.pipeline import Pipeline
from streams.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
LABELS = {"0": "negative", "1": "neutral", "2": "positive"}
NAMES: Final = ("socialstream", "majority", "lexicon", "bow_mnb")
TUNE: Final = 1000  # tweets 1..TUNE are the tune part
TARGET_ALL: Final = 0.66  # issue 14: macro-recall over all 2,000 in stream order
# Tweets 1-200 before issue 14 (e83ab8c's streams/models/sentiment.py with this bench): the cold
# start may not get worse than this.
BEFORE_FIRST_200: Final = 0.643
# (first, last, whether the models start cold at first), 1-based and inclusive
PARTS: Final = (("1-200", 1, 200, "cold start"), ("1-1000", 1, TUNE, "tune"),
                ("1001-2000", TUNE + 1, 2000, "report, after learning 1-1000"),
                ("1001-2000", TUNE + 1, 2000, "report, cold at 1001"),
                ("1-2000", 1, 2000, "report, whole stream"))
# One hyperparameter at a time around the defaults (the sweep the defaults came from).
SWEEP: Final[dict[str, tuple[Any, ...]]] = {
    "prior_strength": (50.0, 100.0, 200.0), "prior_variance": (0.3, 1.0, 3.0),
    "balance_exponent": (1.0, 1.25, 1.5), "word_alpha": (0.5, 1.0, 2.0),
    "word_vocabulary": (1024, 4096, 16384), "prior_weight": (0.0, 0.1, 0.2, 0.3)}


def vader_rule(compound: float) -> str:
    """VADER's own rule: compound >= 0.05 positive, <= -0.05 negative, else neutral."""
    return "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"


def stream(texts: Sequence[str], labels: Sequence[str]) -> dict[str, list[str]]:
    """Every model's prediction of each tweet, made before its label was learned, from fresh
    models at the first tweet."""
    trainer = Trainer()
    pipeline = Pipeline(trainer.models)
    bow: Any = feature_extraction.BagOfWords() | naive_bayes.MultinomialNB()
    seen: Counter[str] = Counter()
    predicted: dict[str, list[str]] = {n: [] for n in NAMES}
    for i, (text, label) in enumerate(zip(texts, labels, strict=True), start=1):
        event = decode(orjson.dumps({"event_id": f"t{i}", "ts": 1_795_687_200_000 + i * 1000,
                                     "type": "comment", "platform": "x", "campaign_id": "tweets",
                                     "post_id": "p", "text": text or ".", "sentiment": label}))
        assert isinstance(event, SocialEvent)
        outcome = pipeline.process(event)
        predicted["socialstream"].append(outcome.examples[0].predicted)
        predicted["majority"].append(seen.most_common(1)[0][0] if seen else "neutral")
        predicted["lexicon"].append(vader_rule(lexicon_scores(text)["compound"]))
        predicted["bow_mnb"].append(bow.predict_one(text) or "neutral")
        for example in outcome.examples:
            trainer.learn(example)
        bow.learn_one(text, label)
        seen[label] += 1
    return predicted


def quality(labels: Sequence[str], predicted: Sequence[str]) -> tuple[float, float]:
    """Macro-recall and accuracy."""
    recall, accuracy = metrics.MacroRecall(), metrics.Accuracy()
    for y, p in zip(labels, predicted, strict=True):
        recall.update(y, p)
        accuracy.update(y, p)
    return float(recall.get()), float(accuracy.get())


def cell(labels: Sequence[str], predicted: Sequence[str]) -> str:
    recall, accuracy = quality(labels, predicted)
    return f"{recall:>10.3f} / {accuracy:.3f}  "


def report(labels: list[str], whole: dict[str, list[str]], cold: dict[str, list[str]],
           curve: bool) -> dict[str, float]:
    """Prints the parts (and the curve); returns socialstream's macro-recall per part."""
    header = "  ".join(f"{n + ' rec/acc':>22}" for n in NAMES)
    print(f"{'tweets':<10} {'part':<30}  {header}")
    found: dict[str, float] = {}
    for name, first, last, what in PARTS:
        runs = cold if what.endswith("cold at 1001") else whole
        offset = TUNE if runs is cold else 0
        y = labels[first - 1:last]
        cells = "  ".join(cell(y, runs[n][first - 1 - offset:last - offset]) for n in NAMES)
        print(f"{name:<10} {what:<30}  {cells}")
        found[f"{name} {what}"] = quality(y, runs["socialstream"][first - 1 - offset:
                                                                  last - offset])[0]
    if curve:
        print(f"\n{'tweets':<10} {'cumulative, stream order':<30}  {header}")
        for last in range(250, len(labels) + 1, 250):
            cells = "  ".join(cell(labels[:last], whole[n][:last]) for n in NAMES)
            print(f"{last:<10} {'':<30}  {cells}")
    return found


def tune(texts: list[str], labels: list[str]) -> None:
    """Macro-recall over the tune part (tweets 1..TUNE only) with one hyperparameter of the
    sentiment model moved at a time; the defaults are what this sweep chose."""
    print(f"tune part only (tweets 1-{TUNE}): macro-recall, one hyperparameter moved at a time")
    for name, values in SWEEP.items():
        figures = []
        for value in values:
            model = SentimentModel(**{name: value})
            predicted = []
            for text, label in zip(texts[:TUNE], labels[:TUNE], strict=True):
                proba, x = model.score(text or ".")
                predicted.append(top(proba))
                model.learn_features(x, label, predicted[-1])
            first200 = quality(labels[:200], predicted[:200])[0]
            figures.append(f"{value!s:>7}: {quality(labels[:TUNE], predicted)[0]:.3f} "
                           f"(1-200 {first200:.3f})")
        print(f"  {name:<17} " + "   ".join(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/tweeteval-val")
    parser.add_argument("--curve", action="store_true", help="cumulative figures every 250")
    parser.add_argument("--tune", action="store_true", help="the hyperparameter sweep, on the "
                        f"tune part (tweets 1-{TUNE}) only")
    args = parser.parse_args()
    texts = (args.data / "val_text.txt").read_text().splitlines()
    labels = [LABELS[x.strip()] for x in (args.data / "val_labels.txt").read_text().splitlines()]
    if args.tune:
        tune(texts, labels)
        return
    found = report(labels, stream(texts, labels), stream(texts[TUNE:], labels[TUNE:]),
                   args.curve)
    whole = found["1-2000 report, whole stream"]
    first = found["1-200 cold start"]
    print(f"\ntarget: macro-recall over all 2,000 >= {TARGET_ALL:.2f}: socialstream {whole:.3f} "
          f"({'met' if whole >= TARGET_ALL else 'NOT met'})")
    print(f"target: tweets 1-200 (cold start) not below {BEFORE_FIRST_200:.3f}, the figure "
          f"before issue 14: socialstream {first:.3f} "
          f"({'met' if round(first, 3) >= BEFORE_FIRST_200 else 'NOT met'})")


if __name__ == "__main__":
    main()
