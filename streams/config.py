"""One frozen Settings object for the whole service.

Every setting has a reliable default pinned here and can be overridden by an environment variable
named ``SOCIALSTREAM_<FIELD>`` (upper case).  The README's configuration table is generated from
``Settings.describe()`` so the docs cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from streams.errors import ConfigError

ENV_PREFIX = "SOCIALSTREAM_"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
LogFormat = Literal["text", "json"]

# A bearer token shorter than this is refused: it would be guessable.
MIN_TOKEN_LENGTH = 16


def _doc(text: str, default: Any, *, secret: bool = False) -> Any:
    # A secret stays out of repr(settings), so that logging a Settings object cannot leak it.
    return field(default=default, metadata={"doc": text}, repr=not secret)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a worker or a CLI command needs to reach Kafka and name its topics."""

    bootstrap_servers: str = _doc("Kafka bootstrap servers, comma separated host:port.",
                                  "127.0.0.1:9092")
    app_id: str = _doc("Faust app id; also the Kafka consumer group of the workers.",
                       "socialstream")
    input_topic: str = _doc("Topic the social events arrive on.", "social.events")
    dlq_topic: str = _doc("Dead-letter topic: original bytes plus error.* headers.",
                          "social.events.dlq")
    recommendations_topic: str = _doc("Topic the recommendations are published to.",
                                      "social.recommendations")
    training_topic: str = _doc("Single-partition topic of labelled examples: its owner trains "
                               "the global models, so there is one learning lineage.",
                               "social.training")
    model_topic: str = _doc("Compacted topic of versioned model snapshots every worker scores "
                            "with.", "social.models")
    partitions: int = _doc("Partition count of the topics socialstream creates (unit of "
                           "parallelism: at most this many workers share the work).", 4)
    replication_factor: int = _doc("Replication factor of the topics socialstream creates.", 1)
    web_host: str = _doc("Interface the worker's HTTP server (/metrics, /healthz) binds to.",
                         "127.0.0.1")
    web_port: int = _doc("Port of the worker's HTTP server.", 6066)
    web_token: str = _doc("Token the worker's HTTP endpoints require as `Authorization: "
                          "Bearer` credentials (16+ printable ASCII characters, no spaces), "
                          "except /healthz, /readyz and /metrics, which stay open for probes and "
                          "scrapers; empty: no authentication.", "", secret=True)
    web_token_metrics: bool = _doc("Require the web token on /metrics too (Prometheus then sends "
                                   "it: `authorization: {type: Bearer, credentials_file: ...}` "
                                   "in its scrape config).", False)
    dry_run: bool = _doc("Publish recommendations marked dry_run: for review, not automation.",
                         False)
    data_dir: str = _doc("Directory for the worker's local state.", "socialstream-data")
    log_level: str = _doc("Worker log level (debug, info, warning, error).", "info")
    log_format: LogFormat = _doc("Worker log format: text (human-readable lines) or json (one "
                                 "JSON object per line: time, level, logger, message, and "
                                 "topic, partition, offset, campaign when known).", "text")
    security_protocol: SecurityProtocol = _doc(
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.", "PLAINTEXT")
    ssl_cafile: str = _doc("CA bundle that signs the brokers' certificates (SSL, SASL_SSL).", "")
    ssl_certfile: str = _doc("Client certificate for mutual TLS (optional).", "")
    ssl_keyfile: str = _doc("Private key of the client certificate (optional).", "")
    sasl_mechanism: SaslMechanism = _doc("PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.", "PLAIN")
    sasl_username: str = _doc("SASL user name (SASL_PLAINTEXT, SASL_SSL).", "")
    sasl_password: str = _doc("SASL password (SASL_PLAINTEXT, SASL_SSL).", "", secret=True)

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ConfigError(f"partitions must be >= 1, got {self.partitions}")
        if self.replication_factor < 1:
            raise ConfigError(f"replication_factor must be >= 1, got {self.replication_factor}")
        if not 0 < self.web_port < 65536:
            raise ConfigError(f"web_port must be a TCP port, got {self.web_port}")
        if self.web_token and not _valid_token(self.web_token):
            # The message never quotes the token: it would end up in logs.
            raise ConfigError(f"web_token ({ENV_PREFIX}WEB_TOKEN) must be at least "
                              f"{MIN_TOKEN_LENGTH} printable ASCII characters without spaces")
        for name in ("security_protocol", "sasl_mechanism", "log_format"):
            allowed = get_args(_field_types()[name])
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, "
                                  f"got {getattr(self, name)!r}")
        if self.security_protocol.startswith("SASL") and not self.sasl_username:
            raise ConfigError(f"security_protocol {self.security_protocol} needs sasl_username "
                              f"({ENV_PREFIX}SASL_USERNAME)")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                raise ConfigError(f"{name} {path!r} is not a readable file")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``SOCIALSTREAM_*`` variables, then explicit overrides (CLI flags)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        types = _field_types()
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f.name, raw, types[f.name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def describe(cls) -> Iterator[tuple[str, str, str]]:
        """(env var, default, meaning) for every setting, in declaration order."""
        for f in fields(cls):
            yield ENV_PREFIX + f.name.upper(), str(f.default) or '""', str(f.metadata["doc"])


def _field_types() -> dict[str, Any]:
    import typing

    return typing.get_type_hints(Settings)


def _valid_token(token: str) -> bool:
    """Printable ASCII without spaces (what an HTTP header carries unchanged), long enough."""
    return len(token) >= MIN_TOKEN_LENGTH and all("!" <= c <= "~" for c in token)


def _parse(name: str, raw: str, kind: Any) -> Any:
    if kind is bool:
        if raw.lower() not in ("1", "true", "yes", "0", "false", "no"):
            raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be true or false, got {raw!r}")
        return raw.lower() in ("1", "true", "yes")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(
                f"{ENV_PREFIX}{name.upper()} must be an integer, got {raw!r}") from None
    return raw
