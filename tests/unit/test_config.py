from __future__ import annotations

import pytest

from streams.config import Settings
from streams.errors import ConfigError


def test_defaults_env_and_overrides_in_that_order() -> None:
    env = {"SOCIALSTREAM_PARTITIONS": "8", "SOCIALSTREAM_INPUT_TOPIC": "in"}
    settings = Settings.from_env(env, input_topic="flag")
    assert settings.partitions == 8
    assert settings.input_topic == "flag"
    assert settings.dlq_topic == "social.events.dlq"


@pytest.mark.parametrize(("env", "message"), [
    ({"SOCIALSTREAM_PARTITIONS": "four"}, "SOCIALSTREAM_PARTITIONS must be an integer"),
    ({"SOCIALSTREAM_PARTITIONS": "0"}, "partitions must be >= 1"),
    ({"SOCIALSTREAM_WEB_PORT": "70000"}, "web_port must be a TCP port"),
    ({"SOCIALSTREAM_SECURITY_PROTOCOL": "TLS"}, "security_protocol must be one of"),
    ({"SOCIALSTREAM_SECURITY_PROTOCOL": "SASL_SSL"}, "needs sasl_username"),
    ({"SOCIALSTREAM_SASL_MECHANISM": "MD5"}, "sasl_mechanism must be one of"),
    ({"SOCIALSTREAM_SSL_CAFILE": "/nonexistent/ca.pem"}, "is not a readable file"),
])
def test_bad_settings_fail_with_a_clear_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().partitions = 3  # type: ignore[misc]
