"""The README's run path: no DATABASE_URL → embedded Postgres, migrated, reused next start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from raxx_queue.db.embedded import start_embedded_postgres


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "TEST_DATABASE_URL"} and not k.startswith("QUEUE_")
    }
    env.update({"QUEUE_DATA_DIR": str(data_dir), "PORT": str(port), "LOG_FORMAT": "json"})
    # left set as on a Heroku dyno: the development server still runs one process
    env["WEB_CONCURRENCY"] = "2"
    return subprocess.Popen(
        [sys.executable, "-m", "raxx_queue.cli", "dev"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_healthy(proc: subprocess.Popen[str], port: int) -> dict[str, object]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0)
        except httpx.TransportError:
            # the server is still starting; polling is the only signal a subprocess gives
            time.sleep(0.2)
            continue
        body: dict[str, object] = response.json()
        return body
    raise AssertionError("service did not become healthy")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    return output


async def test_dev_server_runs_on_embedded_postgres_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = _free_port()
    proc = _start(data_dir, port)
    try:
        health = _wait_healthy(proc, port)
        assert health["database"] == "ok"
        assert health["billing_enabled"] is True
        ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5)
        assert ready.status_code == 200
        url = start_embedded_postgres(data_dir)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("INSERT INTO billing_customer (queue_customer_id) VALUES ('kept')")
        finally:
            await conn.close()
    finally:
        output = _stop(proc)
    assert proc.returncode == 0, output
    assert "raptor token:" in output

    proc = _start(data_dir, port)
    try:
        _wait_healthy(proc, port)
        tokens = (data_dir / "dev-secrets.json").read_text()
        assert "QUEUE_SERVICE_TOKEN_CONSOLE" in tokens
        console = __import__("json").loads(tokens)["QUEUE_SERVICE_TOKEN_CONSOLE"]
        response = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/billing/customers/kept",
            headers={"Authorization": f"Bearer {console}"},
            timeout=5,
        )
        assert response.status_code == 200
        assert response.json()["queue_customer_id"] == "kept"
    finally:
        _stop(proc)
