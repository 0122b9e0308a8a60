"""The Faust app, built from one Settings object.

Faust turns producer idempotence on only inside transactions; socialstream wants it on every
output (DESIGN.md section 6), so the app uses a transport whose producer always asks for it.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from agents.kafka import ssl_context
from streams.config import Settings


class IdempotentProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer with ``acks=all`` and ``enable_idempotence=True`` always."""

    def _settings_extra(self) -> dict[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class Transport(faust_aiokafka.Transport):
    Producer = IdempotentProducer


class App(faust.App):
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
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        autodiscover=False,
    )
