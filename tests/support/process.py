"""Queue as a real server process (`raxx-queue serve`), for lifecycle tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import httpx

from tests.support import values
from tests.support.log_hygiene import SESSION_LOGS


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> CompletedProcess[str]:
    """A `raxx-queue` command run to completion, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "raxx_queue.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_audit_verify(database_url: str) -> CompletedProcess[str]:
    """`raxx-queue audit verify`; its log lines are collected."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BILLING_AUDIT_HMAC_KEY": values.AUDIT_KEY,
        "LOG_FORMAT": "json",
    }
    done = run_cli("audit", "verify", env=env)
    for line in done.stderr.splitlines():
        SESSION_LOGS.write("audit-verify", line)
    return done


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def worker_pids(pid: int) -> list[int]:
    """The processes serving requests: the spawned workers, else the process itself."""
    workers = []
    for child in _children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            workers.append(child)
    return sorted(workers) or [pid]


def service_pids(pid: int) -> list[int]:
    """Every process of the service: its workers, and the supervisor that accepts for
    them when there are several (its CPU is the service's too)."""
    return sorted({pid, *worker_pids(pid)})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUEUE_", "STRIPE_"))}
    env.update(
        {
            "DATABASE_URL": database_url,
            "PORT": str(port),
            "QUEUE_ENV": "staging",
            "FLAG_QUEUE_BILLING": "true",
            "STRIPE_WEBHOOK_SECRET": values.WEBHOOK_SECRET,
            "STRIPE_PRICE_ID_PRO": values.PRICE_PRO,
            "STRIPE_PRICE_ID_PRO_PLUS": values.PRICE_PRO_PLUS,
            "QUEUE_SERVICE_TOKEN_RAPTOR": values.RAPTOR_TOKEN,
            "QUEUE_SERVICE_TOKEN_CONSOLE": values.CONSOLE_TOKEN,
            "BILLING_AUDIT_HMAC_KEY": values.AUDIT_KEY,
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
        }
    )
    env.update(extra)
    return env


@dataclass
class RunningService:
    process: subprocess.Popen[bytes]
    url: str


def wait_until(check: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    """Poll a condition of another process; there is nothing to await across processes."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout}s")
        time.sleep(0.05)


def start_service(
    database_url: str, *, workers: int = 1, port: int | None = None, **extra: str
) -> RunningService:
    port = port or free_port()
    env = service_env(database_url, port, WEB_CONCURRENCY=str(workers), **extra)
    # stderr goes through the session's log collector (and on to ours), so the final
    # log-hygiene check sees every line a service process wrote
    collect = SESSION_LOGS.active
    process = subprocess.Popen(
        [sys.executable, "-m", "raxx_queue.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if collect else None,
    )
    if collect:
        assert process.stderr is not None
        SESSION_LOGS.tee_stderr(process.stderr, f"serve:{port}")
    return RunningService(process, f"http://127.0.0.1:{port}")


def status_of(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.TransportError:
        return None


@contextmanager
def running_service(
    database_url: str, *, workers: int = 1, **extra: str
) -> Iterator[RunningService]:
    """`raxx-queue serve` in a subprocess, ready when /ready answers 200."""
    service = start_service(database_url, workers=workers, **extra)
    try:

        def ready() -> bool:
            if service.process.poll() is not None:
                raise RuntimeError(f"service exited with {service.process.returncode}")
            return status_of(f"{service.url}/ready") == 200

        wait_until(ready, what="service ready")
        yield service
    finally:
        service.process.terminate()
        service.process.wait(timeout=30)
