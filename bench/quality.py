"""Progressive sentiment quality on the 2,000 TweetEval tweets, in stream order, test-then-train.

    .venv/bin/python -m bench.quality [--data ../shared/data/tweeteval-val]

Each tweet is a comment event carrying its label, run through socialstream's pipeline and trainer
(predict, then learn).  Next to it, in the same run: majority class (online), the VADER lexicon
alone, and plain River BagOfWords | MultinomialNB.  Prints the curve every 250 tweets.
Target: the highest macro-recall over the whole stream.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import orjson
from river import feature_extraction, metrics, naive_bayes

from streams.events import SocialEvent, decode
from streams.models.sentiment import lexicon_scores
from streams.pipeline import Pipeline
from streams.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
LABELS = {"0": "negative", "1": "neutral", "2": "positive"}


def vader_rule(compound: float) -> str:
    """VADER's own rule: compound >= 0.05 positive, <= -0.05 negative, else neutral."""
    return "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/tweeteval-val")
    args = parser.parse_args()
    texts = (args.data / "val_text.txt").read_text().splitlines()
    labels = [LABELS[x.strip()] for x in (args.data / "val_labels.txt").read_text().splitlines()]
    trainer = Trainer()
    pipeline = Pipeline(trainer.models)
    bow = feature_extraction.BagOfWords() | naive_bayes.MultinomialNB()
    seen: Counter[str] = Counter()
    names = ("socialstream", "majority", "lexicon", "bow_mnb")
    recall = {n: metrics.MacroRecall() for n in names}
    accuracy = {n: metrics.Accuracy() for n in names}
    print(f"{'tweets':>6}  " + "  ".join(f"{n + ' rec/acc':>22}" for n in names))
    for i, (text, label) in enumerate(zip(texts, labels, strict=True), start=1):
        event = decode(orjson.dumps({"event_id": f"t{i}", "ts": 1_795_687_200_000 + i * 1000,
                                     "type": "comment", "platform": "x", "campaign_id": "tweets",
                                     "post_id": "p", "text": text or ".", "sentiment": label}))
        assert isinstance(event, SocialEvent)
        outcome = pipeline.process(event)
        predicted = {"socialstream": outcome.examples[0].predicted,
                     "majority": seen.most_common(1)[0][0] if seen else "neutral",
                     "lexicon": vader_rule(lexicon_scores(text)["compound"]),
                     "bow_mnb": bow.predict_one(text) or "neutral"}
        for example in outcome.examples:
            trainer.learn(example)
        bow.learn_one(text, label)
        seen[label] += 1
        for n in names:
            recall[n].update(label, predicted[n])
            accuracy[n].update(label, predicted[n])
        if i % 250 == 0 or i == len(texts):
            print(f"{i:>6}  " + "  ".join(f"{recall[n].get():>10.3f} / {accuracy[n].get():.3f}  "
                                           for n in names))
    best = max(names, key=lambda n: recall[n].get())
    print(f"highest macro-recall over the stream: {best} ({recall[best].get():.3f})")


if __name__ == "__main__":
    main()
