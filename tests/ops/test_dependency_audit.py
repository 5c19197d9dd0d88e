"""The dependency audit's verdicts (offline, on pip-audit's own JSON shapes): it never
says "no known vulnerabilities" unless its data source demonstrably answers and every
locked package was audited."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "dependency_audit.py"

# what pip-audit printed here, against an index without PyPI's JSON API: every pin skipped
NOT_FOUND = "Dependency not found on PyPI and could not be audited: {name} ({version})"
CANARY_UNANSWERED = {
    "dependencies": [
        {"name": "requests", "skip_reason": NOT_FOUND.format(name="requests", version="2.19.0")}
    ],
    "fixes": [],
}
CANARY_FLAGGED = {
    "dependencies": [
        {
            "name": "requests",
            "version": "2.19.0",
            "vulns": [{"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"]}],
        }
    ],
    "fixes": [],
}


def _clean(name: str) -> dict[str, Any]:
    return {"name": name, "version": "1.0", "vulns": []}


def _skip(name: str) -> dict[str, Any]:
    return {"name": name, "skip_reason": NOT_FOUND.format(name=name, version="1.0")}


def _run(tmp_path: Path, canary: dict[str, Any], lock: list[dict[str, Any]]) -> tuple[int, str]:
    canary_file, report_file = tmp_path / "canary.json", tmp_path / "report.json"
    canary_file.write_text(json.dumps(canary))
    report_file.write_text(json.dumps({"dependencies": lock, "fixes": []}))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--evaluate", str(canary_file), str(report_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return done.returncode, done.stdout


@pytest.mark.parametrize(
    ("canary", "lock", "code", "says"),
    [
        # the data source answers nothing: no verdict, whatever the lock's report says
        (CANARY_UNANSWERED, [_skip("fastapi"), _skip("stripe")], 2, "NO VERDICT"),
        (CANARY_UNANSWERED, [_clean("fastapi")], 2, "NO VERDICT"),
        # it answers, but some pins were not audited: incomplete
        (CANARY_FLAGGED, [_clean("fastapi"), _skip("stripe")], 2, "INCOMPLETE. 1 of 2"),
        (CANARY_FLAGGED, [_clean("fastapi"), _clean("stripe")], 0, "no known vulnerabilities"),
        (
            CANARY_FLAGGED,
            [{"name": "jinja2", "version": "2.4", "vulns": [{"id": "PYSEC-2019-217"}]}],
            1,
            "jinja2 2.4: PYSEC-2019-217",
        ),
    ],
    ids=["unreachable-all-skipped", "unreachable", "incomplete", "clean", "vulnerable"],
)
def test_the_audit_claims_only_what_it_learned(
    tmp_path: Path, canary: dict[str, Any], lock: list[dict[str, Any]], code: int, says: str
) -> None:
    status, text = _run(tmp_path, canary, lock)
    assert (status, says in text) == (code, True), text
    if code != 0:
        assert "no known vulnerabilities" not in text.lower()


def test_the_audit_is_a_make_target_outside_the_test_command() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "\naudit: bootstrap\n\tscripts/dependency_audit.py\n" in makefile
    test_line = next(line for line in makefile.splitlines() if line.startswith("test:"))
    assert "audit" not in test_line  # it needs the network
    lock = (ROOT / "uv.lock").read_text()
    assert 'name = "pip-audit"' in lock
