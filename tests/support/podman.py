"""The production images, built and run with podman as docs/deploy.md tells operators.

Rootful podman with runc and cgroupfs, the repository's containers.conf (no default
ulimits), host networking (the container's port and the test Postgres are both on
127.0.0.1). The base is the official python image when QUEUE_IMAGE_BASE names it (a
machine that reaches Docker Hub), else the stand-in scripts/python-standin.sh builds
from Debian's packages once per machine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.faults import CuttableProxy, postgres_address, via_port
from tests.support.process import free_port

REPO = Path(__file__).resolve().parents[2]
PODMAN = ("podman", "--runtime", "runc", "--cgroup-manager=cgroupfs")
CONTAINERS_CONF = REPO / "scripts" / "podman" / "containers.conf"
STANDIN = REPO / "scripts" / "python-standin.sh"
# The host's trust store: package downloads inside a build may meet a TLS-inspecting
# proxy whose CA only the host trusts.
CA_DIR = Path("/etc/ssl/certs")
CA_BUNDLE = CA_DIR / "ca-certificates.crt"
BUILD_TIMEOUT = 900
REQUIRED = ("podman", "runc", "debootstrap")


@contextmanager
def reachable_over_tcp(database_url: str) -> Iterator[str]:
    """The database as a container on the host network can reach it: over TCP on
    127.0.0.1. A server listening on a unix socket only (the embedded one, in a directory
    only its own user may enter) is bridged by a proxy running in a thread of its own,
    so the test's blocking podman calls never stall it."""
    target = postgres_address(database_url)
    if target[0] != "unix":
        yield database_url
        return
    port = free_port()
    proxy = CuttableProxy(port, target)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(proxy.restore())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="postgres-tcp-bridge", daemon=True)
    thread.start()
    if not started.wait(10):
        raise AssertionError("the TCP bridge to Postgres did not start in 10 s")
    try:
        yield via_port(database_url, port)
    finally:
        asyncio.run_coroutine_threadsafe(proxy.cut(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def missing_tools() -> list[str]:
    found = [tool for tool in REQUIRED if shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists()]
    return [tool for tool in REQUIRED if tool not in found]


def environment() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*PODMAN, *args],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        output = done.stdout[-3000:] + done.stderr[-3000:]
        raise AssertionError(f"podman {args[0]} exited {done.returncode}:\n{output}")
    return done


def base_image() -> str:
    """QUEUE_IMAGE_BASE, else the stand-in (built on first use, then reused)."""
    configured = os.environ.get("QUEUE_IMAGE_BASE")
    if configured:
        return configured
    done = subprocess.run(
        [str(STANDIN)],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"python-standin.sh exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class Built:
    image_id: str
    seconds: float
    log: str


def build(target: str, tag: str, base: str, workdir: Path) -> Built:
    """`podman build --target`, with the layer cache; returns the image id."""
    iidfile = workdir / f"{target}.iid"
    args = [
        "build",
        "--format",
        "docker",  # Heroku's registry takes Docker v2 manifests; keeps HEALTHCHECK
        "--network",
        "host",
        "--layers",
        "--pull=missing",
        "--target",
        target,
        "--tag",
        tag,
        "--iidfile",
        str(iidfile),
        "--build-arg",
        f"PYTHON_IMAGE={base}",
    ]
    if CA_BUNDLE.exists():
        args += ["--volume", f"{CA_DIR}:{CA_DIR}:ro"]
        for name in ("PIP_CERT", "SSL_CERT_FILE"):
            args += ["--build-arg", f"{name}={CA_BUNDLE}"]
        args += ["--build-arg", "UV_NATIVE_TLS=1"]
    started = time.monotonic()
    done = podman(*args, str(REPO), timeout=BUILD_TIMEOUT)
    return Built(iidfile.read_text().strip(), time.monotonic() - started, done.stdout)


@dataclass(frozen=True)
class Layer:
    size: int
    created_by: str


def image_size(image: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


def layers(image: str) -> list[Layer]:
    """Layers that hold files (history entries of zero size are metadata only)."""
    out = podman("history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", image)
    found = []
    for line in out.stdout.splitlines():
        size, _, created_by = line.partition("\t")
        found.append(Layer(_bytes(size), created_by))
    return [layer for layer in found if layer.size > 0]


def _bytes(human: str) -> int:
    """podman history's sizes ("97.7 MB", "81.9 kB", "0 B") as bytes."""
    number, _, unit = human.strip().partition(" ")
    scale = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[unit or "B"]
    return round(float(number) * scale)


def container_pids(name: str) -> list[int]:
    """The container's main process and its descendants, as host pids."""
    main = int(podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip())
    pids, queue = [], [main]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            queue += [int(child) for child in (task / "children").read_text().split()]
    return pids


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")
