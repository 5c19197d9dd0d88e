#!/usr/bin/env python3
"""Audit the locked dependencies with pip-audit, and never claim more than it learned.

pip-audit answers "No known vulnerabilities found" (exit 0) even when its data source
knew none of the packages ("Dependency not found on PyPI and could not be audited"):
a mirror without PyPI's JSON API, or no route to OSV. So before trusting an answer,
this asks the same service about a release with published advisories (the canary); a
service that finds nothing there is not a data source, and the audit says so.

Exit status: 0 every locked package audited, none vulnerable; 1 known vulnerabilities;
2 no verdict (no data source reachable, or some packages could not be audited).

    scripts/dependency_audit.py                    # make audit
    scripts/dependency_audit.py --evaluate CANARY.json REPORT.json   # a verdict on saved
                                                   # pip-audit JSON reports (offline)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
UV = ROOT / ".tools" / "bin" / "uv"
# requests 2.19.0 has published advisories in both PyPI's and OSV's data
# (CVE-2018-18074, PYSEC-2018-28; GHSA-x84v-xcm2-53pg)
CANARY = "requests==2.19.0"
SERVICES = ("pypi", "osv")

OK, VULNERABLE, NO_VERDICT = 0, 1, 2
Report = dict[str, Any]


def locked_requirements() -> str:
    """Every locked package (runtime, extras, every group) pinned, without the project."""
    return subprocess.run(  # noqa: S603 - our own uv, fixed arguments
        [
            str(UV),
            *("export", "--frozen", "--format", "requirements-txt", "--no-hashes"),
            *("--no-emit-project", "--all-groups", "--all-extras"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def pip_audit(requirements: str, service: str) -> Report | None:
    """pip-audit's JSON report on these pins, or None when it failed outright."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as file:
        file.write(requirements)
        file.flush()
        done = subprocess.run(  # noqa: S603 - our own uv, fixed arguments
            [
                str(UV),
                *("run", "--frozen", "--group", "audit", "pip-audit"),
                *("--no-deps", "--disable-pip", "--progress-spinner", "off", "-f", "json"),
                *("-s", service, "-r", file.name),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
    try:
        report: Report = json.loads(done.stdout)
    except json.JSONDecodeError:
        return None
    return report


def _vulnerable(report: Report) -> list[str]:
    return [
        f"{d['name']} {d['version']}: {', '.join(v['id'] for v in d['vulns'])}"
        for d in report.get("dependencies", [])
        if d.get("vulns")
    ]


def _skipped(report: Report) -> list[str]:
    return [
        f"{d['name']}: {d['skip_reason']}"
        for d in report.get("dependencies", [])
        if d.get("skip_reason")
    ]


def source_answers(canary: Report | None) -> bool:
    """Whether the service found the canary's known advisories."""
    return canary is not None and bool(_vulnerable(canary))


def verdict(canary: Report | None, report: Report | None, service: str) -> tuple[int, str]:
    """The exit status and what to print, from the canary's and the lock's reports."""
    if not source_answers(canary):
        return NO_VERDICT, (
            f"dependency audit: NO VERDICT. The {service} vulnerability service found no "
            f"advisory for {CANARY}, which has published ones: it is not reachable (or "
            "not a real data source) from here. Nothing is known about the locked "
            "packages; run `make audit` where PyPI's JSON API or OSV is reachable."
        )
    if report is None:
        return NO_VERDICT, f"dependency audit: NO VERDICT. pip-audit failed ({service})."
    total = len(report.get("dependencies", []))
    vulnerable, skipped = _vulnerable(report), _skipped(report)
    lines = []
    if vulnerable:
        lines.append(
            f"dependency audit: {len(vulnerable)} locked package(s) with known vulnerabilities:"
        )
        lines += [f"  {line}" for line in vulnerable]
    if skipped:
        lines.append(
            f"dependency audit: INCOMPLETE. {len(skipped)} of {total} locked packages could "
            "not be audited (nothing is known about them):"
        )
        lines += [f"  {line}" for line in skipped]
    if vulnerable:
        return VULNERABLE, "\n".join(lines)
    if skipped:
        return NO_VERDICT, "\n".join(lines)
    return OK, (
        f"dependency audit: no known vulnerabilities in the {total} locked packages "
        f"(pip-audit, {service} service; the canary {CANARY} was flagged as it should be)"
    )


def audit() -> tuple[int, str]:
    requirements = locked_requirements()
    tried = []
    for service in SERVICES:
        canary = pip_audit(CANARY + "\n", service)
        if source_answers(canary):
            return verdict(canary, pip_audit(requirements, service), service)
        tried.append(verdict(canary, None, service)[1])
    return NO_VERDICT, "\n".join(tried)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--evaluate", nargs=2, metavar=("CANARY_JSON", "REPORT_JSON"))
    parser.add_argument("--service", default="pypi")
    args = parser.parse_args(argv)
    if args.evaluate:
        canary, report = (json.loads(Path(path).read_text()) for path in args.evaluate)
        code, text = verdict(canary, report, args.service)
    else:
        code, text = audit()
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
