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


def test_web_token_and_log_format_come_from_the_environment() -> None:
    settings = Settings.from_env({"SOCIALSTREAM_WEB_TOKEN": "0123456789abcdef-XYZ",
                                  "SOCIALSTREAM_LOG_FORMAT": "json"})
    assert settings.web_token == "0123456789abcdef-XYZ"
    assert settings.log_format == "json"
    assert Settings().web_token == "" and Settings().log_format == "text"


@pytest.mark.parametrize("token", ["short", "0123456789 abcdef", "0123456789abcdef\t",
                                   "0123456789abcdéf"])
def test_a_weak_or_unsendable_token_is_refused_without_quoting_it(token: str) -> None:
    with pytest.raises(ConfigError, match=r"web_token .* at least 16 printable ASCII") as err:
        Settings.from_env({"SOCIALSTREAM_WEB_TOKEN": token})
    assert token not in str(err.value)


def test_log_format_must_be_text_or_json() -> None:
    with pytest.raises(ConfigError, match="log_format must be one of text, json"):
        Settings.from_env({"SOCIALSTREAM_LOG_FORMAT": "xml"})


def test_secrets_stay_out_of_the_repr() -> None:
    settings = Settings(web_token="tok-0123456789abcdef", sasl_password="hunter2-password")
    assert "tok-0123456789abcdef" not in repr(settings)
    assert "hunter2-password" not in repr(settings)
    assert "web_port=6066" in repr(settings)
