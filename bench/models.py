"""The pure core on one simulated day: replay throughput, per-event cost by kind, and how often
each policy rule ran, so a figure is never taken on a mix that skips the expensive paths.

    .venv/bin/python -m bench.models [--seed 3] [--campaigns 8] [--hours 24] [--rounds 5]

The day is ``socialstream simulate --seed 3 --campaigns 8 --creatives 4 --duration 24h`` (built
in-process, serialised to JSON lines).  Replay: ``streams.replay.replay`` over those lines, what
``socialstream replay`` runs (decode -> Pipeline.process -> Trainer.learn), on one core; medians
of rounds.  Target: >= 80,000 events/s.  Then text events (posts and comments: scored, and learned
when labelled) and the others are timed apart in the same run, and so is each stretch of 5,000
events of the day: the hours of a sentiment crisis bring more comments, which cost ten times an
impression, so a worker fed the day at a steady 80% of its capacity needs more than all of it in
those stretches and falls behind for a while (bench.peer's latency at 80% is measured on this
load, not on one whose mix is steady).  One more pass counts the calls
of each rule of streams/policy/decide.py and the recommendations of each action: every action must
be reached, or the figures above miss work the service does.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from streams.events import SocialEvent, decode
from streams.pipeline import Pipeline
from streams.policy import allocation, budget, community, content, fatigue
from streams.policy.recommendation import ACTIONS
from streams.replay import replay
from streams.simulator import HOUR_MS, simulate
from streams.training import Trainer

TEXT = {"post", "comment"}
STRETCH = 5_000  # events: about 70 ms of a worker's time at 80% of its capacity
TARGET_EVENTS_PER_S = 80_000
RULE_MODULES = (allocation, budget, community, content, fatigue)


def day(seed: int, campaigns: int, hours: int) -> list[bytes]:
    events, _ = simulate(campaigns=campaigns, creatives=4, duration_ms=hours * HOUR_MS, seed=seed)
    return [orjson.dumps(e) for e in events]


def replay_rate(lines: list[bytes]) -> float:
    started = time.perf_counter()
    result = replay(lines)
    return result.accepted / (time.perf_counter() - started)


def by_kind(events: list[SocialEvent]) -> tuple[float, float]:
    """Events/s of text events and of the others, each timed on its own."""
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


def stretches(events: list[SocialEvent], size: int = STRETCH) -> list[float]:
    """Seconds per event of each run of ``size`` consecutive events of the day, in order (decode
    left out: events are decoded beforehand)."""
    trainer = Trainer()
    pipeline = Pipeline(trainer.models)
    costs = []
    clock = time.perf_counter
    for start in range(0, len(events) - size + 1, size):
        began = clock()
        for event in events[start:start + size]:
            for example in pipeline.process(event).examples:
                trainer.learn(example)
        costs.append((clock() - began) / size)
    return costs


def rule_calls(lines: list[bytes]) -> tuple[Counter[str], Counter[str]]:
    """(calls of each public function of the rule modules, recommendations of each action) over
    one replay: the rules are looked up on their modules at call time, so wrapping them there
    counts every call."""
    calls: Counter[str] = Counter()

    def counted(name: str, rule: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return rule(*args, **kwargs)
        return wrapper

    originals = [(module, name, fn) for module in RULE_MODULES
                 for name, fn in vars(module).items()
                 if inspect.isfunction(fn) and fn.__module__ == module.__name__
                 and not name.startswith("_")]
    for module, name, fn in originals:
        setattr(module, name, counted(f"{module.__name__.rsplit('.', 1)[-1]}.{name}", fn))
    try:
        result = replay(lines)
    finally:
        for module, name, fn in originals:
            setattr(module, name, fn)
    return calls, Counter(result.recommendations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--campaigns", type=int, default=8)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    lines = day(args.seed, args.campaigns, args.hours)
    events = [e for e in map(decode, lines) if isinstance(e, SocialEvent)]
    kinds = Counter(e.type for e in events)
    print(f"one simulated day (seed {args.seed}, {args.campaigns} campaigns, {args.hours} h): "
          f"{len(events):,} events, " + ", ".join(f"{k} {n:,}" for k, n in kinds.most_common()))
    rates = [replay_rate(lines) for _ in range(args.rounds)]
    median = statistics.median(rates)
    print(f"replay (decode + pipeline + trainer): median {median:,.0f} events/s "
          f"({1e6 / median:.1f} us each; rounds: {', '.join(f'{r:,.0f}' for r in rates)}); "
          f"target >= {TARGET_EVENTS_PER_S:,}: "
          f"{'met' if median >= TARGET_EVENTS_PER_S else 'NOT met'}")
    split = [by_kind(events) for _ in range(args.rounds)]
    text_rate = statistics.median(r[0] for r in split)
    other_rate = statistics.median(r[1] for r in split)
    print(f"text events (score, learn when labelled):  median {text_rate:>9,.0f}/s "
          f"({1e6 / text_rate:.0f} us each)")
    print(f"other events (state, models, policy):      median {other_rate:>9,.0f}/s "
          f"({1e6 / other_rate:.1f} us each)")
    runs = [stretches(events) for _ in range(args.rounds)]
    costs = [statistics.median(run[i] for run in runs) for i in range(len(runs[0]))]
    mean = statistics.fmean(costs)
    worst = max(range(len(costs)), key=costs.__getitem__)
    chunk = events[worst * STRETCH:(worst + 1) * STRETCH]
    texts = sum(e.type in TEXT for e in chunk)
    print(f"stretches of {STRETCH:,} events in day order: mean {mean * 1e6:.1f} us/event, "
          f"costliest {costs[worst] * 1e6:.1f} ({costs[worst] / mean:.2f}x, events "
          f"{worst * STRETCH:,}-{(worst + 1) * STRETCH - 1:,}, hour "
          f"{(chunk[0].ts_ms - events[0].ts_ms) // HOUR_MS}, {texts / STRETCH:.1%} text against "
          f"{sum(kinds[k] for k in TEXT) / len(events):.1%} in the day): a worker fed the day at "
          f"80% of its capacity needs {0.8 * costs[worst] / mean:.0%} of it there")
    calls, actions = rule_calls(lines)
    print("rule calls: " + ", ".join(f"{name} {calls[name]:,}" for name in sorted(calls)))
    missing = sorted(set(ACTIONS) - set(actions))
    print("recommendations: " + ", ".join(f"{a} {actions[a]}" for a in sorted(actions))
          + (f"; NEVER reached: {', '.join(missing)}" if missing else "; every action reached"))


if __name__ == "__main__":
    main()
