"""The ``socialstream`` command: worker, topics, produce, consume, demo.

User mistakes (a missing file, an unreachable broker, a bad setting) end in one clear line on
stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaError

from streams.config import Settings
from streams.errors import StreamsError


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        bootstrap_servers=getattr(args, "bootstrap_servers", None),
        partitions=getattr(args, "partitions", None),
        web_port=getattr(args, "web_port", None),
        app_id=getattr(args, "app_id", None),
        log_level=getattr(args, "log_level", None),
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from agents.worker import run_worker

    return run_worker(_settings(args))


def cmd_topics(args: argparse.Namespace) -> int:
    from agents.kafka import ensure_topics

    settings = _settings(args)
    for name, state in asyncio.run(ensure_topics(settings)).items():
        print(f"{name}: {state}")
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from agents.produce import produce_file

    settings = _settings(args)
    report = asyncio.run(produce_file(settings, args.file, topic=args.topic or
                                      settings.input_topic, batch_size=1 if args.no_batch
                                      else args.batch_size))
    print(report.summary(), file=sys.stderr)
    return 1 if report.skipped or not report.ok else 0


def cmd_consume(args: argparse.Namespace) -> int:
    from agents.consume import consume

    count = asyncio.run(consume(_settings(args), args.topic, limit=args.max,
                                from_beginning=args.from_beginning, idle_timeout=args.timeout))
    print(f"{count} messages", file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from agents.replay import run_replay

    return run_replay(args.events, out=args.out, report=args.report)


def cmd_demo(args: argparse.Namespace) -> int:
    from agents.demo import run_demo

    return run_demo(_settings(args), timeout=args.timeout, seconds=args.seconds)


def cmd_simulate(args: argparse.Namespace) -> int:
    from agents.simulate import run_simulate

    return run_simulate(_settings(args), campaigns=args.campaigns, creatives=args.creatives,
                        duration=args.duration, seed=args.seed, out=args.out,
                        to_kafka=args.to_kafka, rate=args.rate, aggregate=args.aggregate)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="socialstream",
        description="Real-time campaign intelligence on Kafka. Settings come from SOCIALSTREAM_* "
                    "environment variables (see README); flags override them.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str,
            connection: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        if connection:
            p.add_argument("--bootstrap-servers", metavar="HOST:PORT",
                           help="Kafka bootstrap servers (SOCIALSTREAM_BOOTSTRAP_SERVERS)")
        return p

    worker = add("worker", cmd_worker, "run a worker: validate, learn, recommend")
    worker.add_argument("--web-port", type=int, help="HTTP port for /metrics and /healthz")
    worker.add_argument("--partitions", type=int, help="partitions of the topics it creates")
    worker.add_argument("--app-id", help="Faust app id / consumer group")
    worker.add_argument("--log-level", help="debug, info, warning or error")

    topics = add("topics", cmd_topics, "manage socialstream's topics")
    topics.add_argument("action", choices=["create"],
                        help="create: make the input, dead-letter and recommendation topics")
    topics.add_argument("--partitions", type=int, help="partition count (SOCIALSTREAM_PARTITIONS)")

    produce = add("produce", cmd_produce, "send JSON-lines events to Kafka, keyed by campaign_id")
    produce.add_argument("file", help="a JSONL file, or - for standard input")
    produce.add_argument("--topic", help="target topic (default: the input topic)")
    produce.add_argument("--batch-size", type=int, default=100,
                         help="events per Kafka message, per campaign (default 100)")
    produce.add_argument("--no-batch", action="store_true", help="one event per Kafka message")

    consume = add("consume", cmd_consume, "print a topic's messages as JSON lines")
    consume.add_argument("topic", help="topic to read")
    consume.add_argument("--max", type=int, default=None, help="stop after this many messages")
    consume.add_argument("--from-beginning", action="store_true",
                         help="start at the oldest message (default: only new ones)")
    consume.add_argument("--timeout", type=float, default=None,
                         help="stop after this many seconds without a message")

    replay = add("replay", cmd_replay, "run the pipeline over a JSONL event file, without Kafka",
                 connection=False)
    replay.add_argument("events", help="a JSONL file of events, or - for standard input")
    replay.add_argument("--out", help="write what the pipeline emits here, one JSON per line")
    replay.add_argument("--report", help="write the final progressive metrics here (JSON)")

    simulate = add("simulate", cmd_simulate,
                   "generate campaign traffic with ground truth: to a JSONL file or to Kafka")
    simulate.add_argument("--campaigns", type=int, default=8, help="campaigns (default 8)")
    simulate.add_argument("--creatives", type=int, default=4,
                          help="creatives per campaign (default 4)")
    simulate.add_argument("--duration", default="24h",
                          help="event time covered: 90s, 30m, 24h, 2d (default 24h)")
    simulate.add_argument("--seed", type=int, default=1, help="same seed, same traffic")
    simulate.add_argument("--aggregate", metavar="INTERVAL",
                          help="impressions, clicks and conversions as counts per creative per "
                          "INTERVAL (1m, 1h), as ad platforms report delivery")
    target = simulate.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", help="JSONL file; the ground truth goes to OUT.truth.json")
    target.add_argument("--to-kafka", action="store_true", help="produce to the input topic")
    simulate.add_argument("--rate", type=float, default=2000.0,
                          help="events per second with --to-kafka (default 2000)")

    demo = add("demo", cmd_demo, "start local Kafka and a worker, feed sample events and a "
               "simulated day with a live view, report", connection=False)
    demo.add_argument("--timeout", type=float, default=120.0,
                      help="seconds to wait for the worker to catch up")
    demo.add_argument("--seconds", type=float, default=60.0,
                      help="wall-clock seconds the simulated day is played over (default 60)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args: Any = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except KafkaConnectionError as exc:
        settings = _settings(args)
        print(f"socialstream {args.command}: error: cannot connect to Kafka at "
              f"{settings.bootstrap_servers} ({settings.security_protocol}): "
              f"{_tls_problem(settings) or _one_line(exc)}", file=sys.stderr)
        return 2
    except (StreamsError, KafkaError, OSError) as exc:
        print(f"socialstream {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _tls_problem(settings: Settings) -> str | None:
    """A failed TLS handshake (an untrusted or misnamed broker certificate) in one line."""
    from agents.kafka import tls_problem

    try:
        return tls_problem(settings)
    except (OSError, ValueError):  # an unreadable CA file: the original error says more
        return None


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
