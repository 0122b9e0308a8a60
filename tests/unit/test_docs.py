"""docs/events.md must match the code: every reason code is listed, every example decodes to it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.config import Settings
from streams.events import Reason, Rejected, decode

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(?P<code>[a-z0-9_]+)` \| [^|]+ \| (?P<example>.*) \|$", re.M)
ROWS = {m["code"]: m["example"] for m in ROW.finditer((ROOT / "docs/events.md").read_text())}
# Examples that a table cell can only describe: the code path is covered in test_events.py.
DESCRIBED = {"too_large", "text_too_long", "too_many_topics", "internal_error"}


def test_every_reason_code_is_documented() -> None:
    assert set(ROWS) == {r.value for r in Reason}


@pytest.mark.parametrize("code", sorted(set(ROWS) - DESCRIBED))
def test_documented_example_decodes_to_its_code(code: str) -> None:
    example = ROWS[code].strip("`")
    result = decode(example.encode())
    assert isinstance(result, Rejected) and result.reason.value == code, result


def test_readme_lists_every_setting_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    for env, default, _ in Settings.describe():
        assert f"| `{env}` | `{default}` |" in readme, env


def test_recommendations_doc_is_what_the_code_generates() -> None:
    from agents.docs import PATH, recommendations_markdown

    assert PATH.read_text() == recommendations_markdown(), "run: python -m agents.docs"
