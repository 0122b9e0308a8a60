"""User mistakes end in one clear line and a non-zero exit code, never a traceback."""

from __future__ import annotations

import pytest

from agents.cli import main
from agents.kafka import client_options, owner_partition
from agents.produce import ProduceReport, read_keyed_lines
from streams.config import Settings


def test_missing_file_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["produce", "/nonexistent/events.jsonl", "--bootstrap-servers",
                 "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "socialstream produce: error: /nonexistent/events.jsonl: no such file"


def test_bad_setting_is_one_line(capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCIALSTREAM_PARTITIONS", "many")
    assert main(["topics", "create"]) == 2
    err = capsys.readouterr().err
    assert "SOCIALSTREAM_PARTITIONS must be an integer" in err
    assert len(err.strip().splitlines()) == 1


def test_help_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("worker", "topics", "produce", "consume", "demo"):
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        assert exit_.value.code == 0
        assert "usage: socialstream " + command in capsys.readouterr().out


def test_produce_keys_by_campaign_and_reports_bad_lines(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: object) -> None:
    import io

    report = ProduceReport()
    data = io.BytesIO(b'{"campaign_id": "c-1"}\n[1]\n\n{oops\n{"campaign_id": 5}\n')
    lines = list(read_keyed_lines(data, report))
    assert lines == [(b"c-1", b'{"campaign_id": "c-1"}'), (None, b"[1]"),
                     (None, b'{"campaign_id": 5}')]
    assert report.skipped == [4]
    assert "line 4: not JSON" in capsys.readouterr().err


def test_owner_partition_matches_kafkas_default_partitioner() -> None:
    # Utils.toPositive(Utils.murmur2(key)) % n, computed with kafka-clients 4.1.1 in jshell.
    keys = ["camp-000", "camp-001", "camp-002", "a", "socialstream"]
    assert [owner_partition(k, 4) for k in keys] == [2, 2, 1, 0, 1]
    assert [owner_partition(k, 12) for k in keys] == [6, 6, 1, 4, 1]


def test_sasl_options_reach_the_clients() -> None:
    settings = Settings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                        sasl_username="u", sasl_password="p")
    options = client_options(settings)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "u"
    assert options["ssl_context"] is None
