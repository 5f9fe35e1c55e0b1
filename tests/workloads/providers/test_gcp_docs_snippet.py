"""The Pub/Sub snippet of docs/operations.md section 13 runs as written against the emulator."""

import re
from pathlib import Path

import pytest

from tests.factories import WorkloadClassFactory

pytestmark = [pytest.mark.emulator, pytest.mark.django_db]

OPERATIONS = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


def _section_13_snippet() -> str:
    text = OPERATIONS.read_text()
    section = text[text.index("## 13. The Pub/Sub emulator") :]
    match = re.search(r"python manage\.py shell -c '\n(.*?)'\n```", section, re.S)
    assert match, "section 13 lost its `manage.py shell -c` snippet"
    return match.group(1)


def test_the_operations_pubsub_snippet_runs_against_the_emulator(pubsub_emulator, settings, capsys):
    settings.GOOGLE_CLOUD_PROJECT = "demo-project"
    WorkloadClassFactory(slug="document-processing")
    exec(compile(_section_13_snippet(), str(OPERATIONS), "exec"), {})  # noqa: S102 - our own docs
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("EnsureResult(")
    assert re.fullmatch(r"\['\d+'\]", printed[1])  # the published message's id
    assert re.fullmatch(r"\[\('\d+', 1\)\]", printed[2])  # pulled back, first attempt
