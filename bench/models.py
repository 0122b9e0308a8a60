"""Per-event cost of the pipeline by kind of event, on a realistic mix, median of 5 rounds.

    .venv/bin/python -m bench.models [--events 30000] [--rounds 5]

Text events (posts and comments: scored, and learned when labelled) and non-text events (through
campaign state and the engagement models) are timed separately, in the same run; the trainer
learns every example as it is produced.  Targets on one core: text >= 8,000/s, non-text >= 40,000/s.
"""

from __future__ import annotations

import argparse
import statistics
import time

from streams.events import SocialEvent, decode
from streams.pipeline import Pipeline
from streams.training import Trainer
from tests.eventgen import mixed

TEXT = {"post", "comment"}


def one_round(events: list[SocialEvent]) -> tuple[float, float]:
    trainer = Trainer()
    pipeline = Pipeline(trainer.models)
    spent = {True: 0.0, False: 0.0}
    count = {True: 0, False: 0}
    clock = time.perf_counter
    for event in events:
        started = clock()
        for example in pipeline.process(event).examples:
            trainer.learn(example)
        is_text = event.type in TEXT
        spent[is_text] += clock() - started
        count[is_text] += 1
    return count[True] / spent[True], count[False] / spent[False]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    events = [e for e in (decode(p.raw) for p in mixed(args.events, seed=8))
              if isinstance(e, SocialEvent)]
    texts = sum(e.type in TEXT for e in events)
    print(f"{len(events)} valid events: {texts} texts, {len(events) - texts} others")
    rounds = [one_round(events) for _ in range(args.rounds)]
    text_rate = statistics.median(r[0] for r in rounds)
    other_rate = statistics.median(r[1] for r in rounds)
    print(f"text events (score, learn when labelled): median {text_rate:>9,.0f}/s "
          f"({1e6 / text_rate:.0f} us each)")
    print(f"non-text events (state + engagement):     median {other_rate:>9,.0f}/s "
          f"({1e6 / other_rate:.1f} us each)")


if __name__ == "__main__":
    main()
