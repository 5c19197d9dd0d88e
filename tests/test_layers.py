"""The package's layers: every import points down (or across within a layer), never up.

From the bottom: the shared words and configuration; the adapters to Postgres and
Stripe; the records Queue keeps beside its tables (audit chain, mirror outbox); the
ingestion of Stripe events; the billing flows; the HTTP API; the entry points.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "queue" / "raxx_queue"

LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "core",
        frozenset(
            {
                "__init__",
                "vocabulary",
                "errors",
                "jsonio",
                "redaction",
                "settings",
                "settings_checks",
                "settings_types",
                "logs",
                "log_limits",
                "sentry",
                "metrics",
                "pacing",
                "plans",
                "webhook_keys",
                "heap",
            }
        ),
    ),
    ("adapters", frozenset({"db", "stripe_gateway", "stripe_errors", "stripe_http", "wakeups"})),
    ("records", frozenset({"audit", "mirror"})),
    ("ingestion", frozenset({"webhooks"})),
    ("flows", frozenset({"billing"})),
    ("http", frozenset({"api"})),
    # a development tool: above everything it exercises; `raxx-queue dev` starts it,
    # nothing that serves imports it (test_the_serving_path_never_loads_the_simulator)
    ("dev tools", frozenset({"simulator"})),
    (
        "entry points",
        frozenset(
            {
                "app",
                "cli",
                "dev_command",
                "doctor",
                "http_protocol",
                "operator_jobs",
                "connection_dealer",
                "serving_worker",
                "supervisor",
            }
        ),
    ),
)


def layer_of(top: str) -> int:
    for rank, (_, members) in enumerate(LAYERS):
        if top in members:
            return rank
    raise AssertionError(f"raxx_queue.{top} belongs to no layer: add it to LAYERS")


def imported_modules(path: Path) -> set[str]:
    """Every raxx_queue module a file imports, at any depth (lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "raxx_queue" or name.startswith("raxx_queue.")}


def upward_imports(package: Path) -> list[str]:
    """'importer -> imported' for each import of a higher layer."""
    arrows = []
    for path in sorted(package.rglob("*.py")):
        top = path.relative_to(package).parts[0].removesuffix(".py")
        for module in sorted(imported_modules(path)):
            parts = module.split(".")
            if len(parts) < 2:
                continue
            if layer_of(parts[1]) > layer_of(top):
                arrows.append(f"{path.relative_to(package)} -> {module}")
    return arrows


def test_no_import_points_up_the_layers() -> None:
    assert upward_imports(PACKAGE) == []


def test_every_module_has_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        layer_of(path.relative_to(PACKAGE).parts[0].removesuffix(".py"))


def test_the_serving_path_never_loads_the_simulator() -> None:
    """What `raxx-queue serve` imports to build and run the app leaves the simulator out."""
    code = (
        "import sys, raxx_queue.cli, raxx_queue.app, raxx_queue.supervisor\n"
        "from raxx_queue.settings import Settings\n"
        "raxx_queue.app.create_app(Settings(queue_env='test'))\n"
        "loaded = [m for m in sys.modules if m.startswith('raxx_queue.simulator')]\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=PACKAGE.parents[1],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
