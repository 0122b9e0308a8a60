"""The Faust app, built from one Settings object.

Two changes to Faust's Kafka transport, both for delivery guarantees (DESIGN.md section 6):
- Faust turns producer idempotence on only inside transactions; socialstream wants it on every
  output, so the producer always asks for it.
- State snapshots must be durable before their source offsets are committed.  Every commit
  (periodic, on rebalance, at shutdown) first runs the app's ``before_commit`` hooks, which queue
  the snapshots; Faust then flushes the producer and only then commits the offsets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from agents.kafka import MAX_MODEL_BYTES, ssl_context
from streams.config import Settings


class IdempotentProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer with ``acks=all`` and ``enable_idempotence=True`` always."""

    def _settings_extra(self) -> dict[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class SnapshottingConsumer(faust_aiokafka.Consumer):
    """Faust's consumer, running the app's ``before_commit`` hooks before every commit."""

    async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        for hook in getattr(self.app, "before_commit", ()):
            hook()  # synchronous: nothing is processed between the snapshot and the offsets
        return bool(await super().commit(topics, start_new_transaction))


class Transport(faust_aiokafka.Transport):
    Producer = IdempotentProducer
    Consumer = SnapshottingConsumer


class App(faust.App):
    before_commit: list[Callable[[], None]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_commit = []

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> Transport:
        return Transport(self.conf.broker_producer, self)


def credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """Faust's form of the TLS / SASL settings (the same ones aiokafka clients get)."""
    context = ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=settings.sasl_username,
                                     password=settings.sasl_password,
                                     ssl_context=context, mechanism=settings.sasl_mechanism)
    return faust.SSLCredentials(context) if context is not None else None


def create_app(settings: Settings) -> App:
    """A Faust app with socialstream's reliability defaults; agents are attached by the caller."""
    return App(
        settings.app_id,
        broker=[f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=credentials(settings),
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # A new consumer group starts at the beginning: events produced before the first worker
        # came up are processed, not skipped.
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Batch output records for 5 ms instead of one produce request per dead letter.
        producer_linger_ms=5,
        producer_max_request_size=MAX_MODEL_BYTES,
        # A killed worker's partitions move to the others after 10 s, not Faust's default 60 s.
        broker_session_timeout=10.0,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        autodiscover=False,
    )
