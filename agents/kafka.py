"""Kafka clients for the process edge: connection options, topic creation, partition ownership.

Everything that talks to Kafka outside Faust's own consumer goes through here, so TLS and SASL
settings are applied the same way by the worker, the CLI and the tests.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import murmur2

from streams.config import Settings
from streams.errors import ConfigError

MAX_MODEL_BYTES = 64 * 1024 * 1024  # a model snapshot is one message
STATE_TABLE = "campaign-state"


def state_changelog(settings: Settings) -> str:
    """The compacted changelog topic of the campaign-state table (Faust's naming)."""
    return f"{settings.app_id}-{STATE_TABLE}-changelog"


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A TLS context for SSL / SASL_SSL, trusting ``ssl_cafile`` (system CAs when empty)."""
    if "SSL" not in settings.security_protocol:
        return None
    context: ssl.SSLContext = create_ssl_context(cafile=settings.ssl_cafile or None,
                                                 certfile=settings.ssl_certfile or None,
                                                 keyfile=settings.ssl_keyfile or None)
    return context


X509_V_ERR_HOSTNAME_MISMATCH = 62


def tls_problem(settings: Settings, timeout: float = 5.0) -> str | None:
    """Why a TLS handshake with the bootstrap servers fails, in the user's words, or None when it
    succeeds or no server answers (the problem is then elsewhere).

    aiokafka reports a failed bootstrap as one KafkaConnectionError without its cause, so the CLI
    asks this after the fact, with the very context the clients were given.
    """
    context = ssl_context(settings)
    if context is None:
        return None
    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.strip("[]")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout) as sock, \
                    context.wrap_socket(sock, server_hostname=host):
                return None
        except ssl.SSLCertVerificationError as exc:
            hint = ("does the broker's certificate name this host?"
                    if exc.verify_code == X509_V_ERR_HOSTNAME_MISMATCH else
                    "is SOCIALSTREAM_SSL_CAFILE the CA that signed the broker's certificate?")
            return f"TLS certificate verification failed: {exc.verify_message} ({hint})"
        except ssl.SSLError as exc:
            reason = ("the server closed the connection" if isinstance(exc, ssl.SSLEOFError)
                      else exc.reason or str(exc))
            return f"TLS handshake failed: {reason} (is {server.strip()} a TLS listener?)"
        except (OSError, ValueError):
            continue
    return None


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments shared by every aiokafka client: servers, TLS, SASL."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
        "ssl_context": ssl_context(settings),
    }
    if settings.security_protocol.startswith("SASL"):
        options.update(sasl_mechanism=settings.sasl_mechanism,
                       sasl_plain_username=settings.sasl_username,
                       sasl_plain_password=settings.sasl_password)
    return options


def new_producer(settings: Settings, **extra: Any) -> AIOKafkaProducer:
    """An idempotent producer (acks=all): retries can never duplicate or reorder a message."""
    return AIOKafkaProducer(**client_options(settings), enable_idempotence=True, acks="all",
                            **extra)


@functools.lru_cache(maxsize=65_536)
def owner_partition(campaign_id: str, partitions: int) -> int:
    """The input partition that owns a campaign: Kafka's default (murmur2) partitioner, the one
    the Java client, aiokafka and Faust use for a keyed message."""
    return int(murmur2(campaign_id.encode()) & 0x7FFFFFFF) % partitions


async def ensure_topics(settings: Settings) -> dict[str, str]:
    """Create the input, dead-letter and recommendation topics and the state changelog with the
    configured partition count, and the training and model topics with one partition.

    Existing topics are kept; an input topic with another partition count is an error (Faust
    would crash on it, and campaign ownership would not match the configuration).
    """
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=30_000)
    await admin.start()
    try:
        rf = settings.replication_factor
        topics = [NewTopic(name, settings.partitions, rf) for name in
                  (settings.input_topic, settings.dlq_topic, settings.recommendations_topic)]
        # The changelog too, before Faust starts: a topic created a moment before its first
        # write can still be missing partitions in the producer's metadata ("Unrecognized
        # partition"), which would stop the worker at its first commit.
        topics += [NewTopic(state_changelog(settings), settings.partitions, rf,
                            topic_configs={"cleanup.policy": "compact"}),
                   NewTopic(settings.training_topic, 1, rf),
                   NewTopic(settings.model_topic, 1, rf, topic_configs={
                       "cleanup.policy": "compact", "max.message.bytes": str(MAX_MODEL_BYTES)})]
        response = await admin.create_topics(topics)
        outcome: dict[str, str] = {}
        for name, code, *_ in response.topic_errors:
            error = for_code(code)
            if code and error is not TopicAlreadyExistsError:
                raise ConfigError(f"cannot create topic {name}: {error.__name__}")
            partitions = next(t.num_partitions for t in topics if t.name == name)
            outcome[name] = f"{'exists' if code else 'created'} ({partitions} partitions)"
        count = await _partition_count(admin, settings.input_topic)
        for topic in topics[1:]:  # every partition known before the worker writes to any
            await _partition_count(admin, topic.name)
        if count != settings.partitions:
            raise ConfigError(
                f"topic {settings.input_topic} has {count} partitions but SOCIALSTREAM_PARTITIONS "
                f"is {settings.partitions}: set it to {count} or use a new topic")
        return outcome
    finally:
        await admin.close()


async def _partition_count(admin: AIOKafkaAdminClient, topic: str) -> int:
    """Partitions of ``topic`` once its metadata has propagated and each has a leader (a
    just-created topic may show none, or leaderless ones, for a moment)."""
    count = 0
    for _ in range(100):
        described = await admin.describe_topics([topic])
        partitions = described[0]["partitions"] if described else []
        count = len(partitions)
        if count and all(p.get("leader", -1) >= 0 and not p.get("error_code")
                         for p in partitions):
            break
        await asyncio.sleep(0.1)
    return count
