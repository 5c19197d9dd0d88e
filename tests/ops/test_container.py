"""The production images built from the Dockerfile and run with podman, as an operator would.

The release image migrates an empty database; the web image serves on $PORT with two
workers, answers /health and /ready, applies a signed webhook, pushes the mirror to
Raptor, serves a read to a token, runs as a non-root user, and on SIGTERM during a
request that is still running finishes it and exits 0 within 25 s. The build time,
image size and layers are printed. docs/deploy.md says what the stand-in base proves
and what it does not.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from raxx_queue.simulator.events import signed
from tests.mirror.steps import accepted_version
from tests.peers.raptor_receiver import RaptorReceiver
from tests.support import podman, values
from tests.support.database import create_database, drop_database, with_params
from tests.support.log_hygiene import SESSION_LOGS
from tests.support.process import free_port
from tests.support.webhooks import T0, WEBHOOK, customer_event, subscription_event

# a cold machine builds the stand-in base and both images: minutes, not seconds
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

SHUTDOWN_BOUND = 25.0  # SPEC §8 and Heroku's 30 s SIGTERM→SIGKILL window
START_TIMEOUT = 90.0
NON_ROOT_UID = 10001
HELD_CUSTOMER = "cus_held"
LOCK_HELD = "SELECT pg_advisory_lock(billing_customer_lock_key($1))"
UNLOCK_HELD = "SELECT pg_advisory_unlock(billing_customer_lock_key($1))"
WAITING_FOR_LOCK = """
SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'
"""


class Images:
    def __init__(self, base: str, web: podman.Built, release: podman.Built) -> None:
        self.base = base
        self.web = web
        self.release = release


@pytest.fixture(scope="module")
def images() -> Iterator[Images]:
    if os.environ.get("QUEUE_CONTAINER_TEST") == "skip":
        # docker-compose.test.yml: the suite itself runs in a container, without the
        # privileges podman needs to run another one inside it
        pytest.skip("QUEUE_CONTAINER_TEST=skip: no containers inside this container")
    if os.geteuid() != 0:
        # .ci/run runs as root; GitHub's CI runs this file in a step of its own, with sudo
        pytest.skip("rootful podman needs root")
    missing = podman.missing_tools()
    assert not missing, f"{missing} not installed: run scripts/bootstrap.sh"
    with tempfile.TemporaryDirectory(prefix="queue-images-") as workdir:
        started = time.monotonic()
        base = podman.base_image()
        base_seconds = time.monotonic() - started
        web = podman.build("runtime", "localhost/raxx-queue:web-test", base, Path(workdir))
        release = podman.build("release", "localhost/raxx-queue:release-test", base, Path(workdir))
        print(
            f"\nimages: base {base} ready in {base_seconds:.1f}s; web built in"
            f" {web.seconds:.1f}s, release in {release.seconds:.1f}s"
        )
        yield Images(base, web, release)


def container_env(database_url: str, mirror_url: str, port: int) -> dict[str, str]:
    """A production configuration; passed by name (`-e NAME`), never on the command line."""
    return {
        "QUEUE_ENV": "production",
        # the local test server has no TLS; production otherwise adds sslmode=require
        "DATABASE_URL": with_params(database_url, sslmode="disable"),
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "FLAG_QUEUE_BILLING": "true",
        "STRIPE_RESTRICTED_KEY": values.STRIPE_KEY,
        "STRIPE_API_BASE": f"http://127.0.0.1:{free_port()}",  # never called here
        "STRIPE_WEBHOOK_SECRET": values.WEBHOOK_SECRET,
        "STRIPE_PRICE_ID_PRO": values.PRICE_PRO,
        "STRIPE_PRICE_ID_PRO_PLUS": values.PRICE_PRO_PLUS,
        "QUEUE_SERVICE_TOKEN_RAPTOR": values.RAPTOR_TOKEN,
        "QUEUE_SERVICE_TOKEN_CONSOLE": values.CONSOLE_TOKEN,
        "RAPTOR_MIRROR_URL": mirror_url,
        "RAPTOR_MIRROR_TOKEN": values.MIRROR_TOKEN,
        "RAPTOR_MIRROR_SIGNING_SECRET": values.MIRROR_SIGNING_SECRET,
        "BILLING_AUDIT_HMAC_KEY": values.AUDIT_KEY,
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
    }


def run_args(env: dict[str, str]) -> list[str]:
    args = ["--network", "host"]
    for name in env:
        args += ["--env", name]
    return args


@contextmanager
def with_env(env: dict[str, str]) -> Iterator[None]:
    """podman reads `-e NAME` values from its own environment."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
async def fresh_database(pg_server: str) -> AsyncIterator[str]:
    url = await create_database(pg_server, prefix="queue_image")
    yield url
    await drop_database(pg_server, url)


def collect_logs(name: str, source: str) -> str:
    done = podman.podman("logs", name, check=False)
    for line in (done.stdout + done.stderr).splitlines():
        SESSION_LOGS.write(source, line)
    return done.stdout + done.stderr


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


async def until(check: Any, timeout: float, what: str, seen: Any = None) -> None:
    """Poll another process (a container has nothing to await); on time-out say what
    was seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            detail = await seen() if seen else ""
            raise AssertionError(f"{what} not reached in {timeout}s {detail}")
        await asyncio.sleep(0.05)


def report_image(images: Images) -> None:
    for label, built in (("web", images.web), ("release", images.release)):
        size = podman.image_size(built.image_id)
        layers = podman.layers(built.image_id)
        print(f"{label} image: {size / 1e6:.1f} MB in {len(layers)} layers")
        for layer in layers:
            print(f"  {layer.size / 1e6:8.1f} MB  {layer.created_by[:90]}")


async def test_release_image_migrates_an_empty_database(
    images: Images, fresh_database: str
) -> None:
    with podman.reachable_over_tcp(fresh_database) as reachable:
        env = container_env(reachable, "http://127.0.0.1:9/unused", free_port())
        with with_env(env):
            done = podman.podman(
                "run", "--rm", *run_args(env), images.release.image_id, timeout=300, check=False
            )
    output = done.stdout + done.stderr
    for line in output.splitlines():
        SESSION_LOGS.write("container:release", line)
    assert done.returncode == 0, output[-3000:]
    assert "+ billing_customer" in output
    assert fresh_database not in output
    conn = await asyncpg.connect(fresh_database)
    try:
        deployed = await conn.fetchval(
            "SELECT count(*) FROM sqitch.changes WHERE project = 'raxx_queue'"
        )
        assert deployed > 0
        assert await conn.fetchval("SELECT to_regclass('billing_customer')") is not None
    finally:
        await conn.close()


async def test_web_image_serves_and_drains_on_sigterm(images: Images, clean_db: str) -> None:
    report_image(images)
    port = free_port()
    name = f"queue-web-test-{port}"
    db = await asyncpg.connect(clean_db)
    with (
        RaptorReceiver(token=values.MIRROR_TOKEN) as raptor,
        podman.reachable_over_tcp(clean_db) as reachable,
    ):
        env = container_env(reachable, raptor.url, port)
        with with_env(env):
            podman.podman("run", "--detach", "--name", name, *run_args(env), images.web.image_id)
        try:
            await serve_and_drain(name, port, db, raptor)
        finally:
            collect_logs(name, "container:web")
            podman.podman("rm", "--force", name, check=False)
            await db.close()


async def serve_and_drain(
    name: str, port: int, db: asyncpg.Connection[asyncpg.Record], raptor: RaptorReceiver
) -> None:
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(30, connect=2)) as http:

        async def ready() -> bool:
            try:
                return (await http.get("/ready")).status_code == 200
            except httpx.TransportError:
                return False

        async def state() -> str:
            return podman.podman("ps", "-a", "--filter", f"name={name}", check=False).stdout

        await until(ready, START_TIMEOUT, "/ready 200", state)
        # production shows the flag only to a caller with a token
        health = (await http.get("/health", headers=values.CONSOLE)).json()
        assert (health["status"], health["database"], health["billing_enabled"]) == (
            "ok",
            "ok",
            True,
        )

        # two workers, each its own process, all of them the image's non-root user
        pids = podman.container_pids(name)
        assert len(pids) >= 3, pids  # supervisor + 2 workers
        assert {podman.uid_of(pid) for pid in pids} == {NON_ROOT_UID}

        # a signed webhook applied, the mirror pushed to Raptor, read with a token
        for event in (
            customer_event("customer.created", created=T0),
            subscription_event("customer.subscription.created", created=T0 + 1),
        ):
            body, header = signed(event, values.WEBHOOK_SECRET)
            answer = await http.post(WEBHOOK, content=body, headers={"Stripe-Signature": header})
            assert answer.status_code == 200, answer.text
            assert answer.json()["outcome"] == "applied"
        version = await db.fetchval(
            "SELECT version FROM billing_subscription_mirror WHERE queue_customer_id = 'cust_1'"
        )
        await raptor.await_for(accepted_version("cust_1", version), timeout=30)
        read = await http.get("/api/v1/billing/subscriptions/cust_1", headers=values.RAPTOR)
        assert read.status_code == 200
        assert (read.json()["plan_tier"], read.json()["entitled"]) == ("pro", True)
        assert (await http.get("/api/v1/billing/subscriptions/cust_1")).status_code == 401

        await sigterm_during_a_held_request(name, port, db, http)


async def sigterm_during_a_held_request(
    name: str, port: int, db: asyncpg.Connection[asyncpg.Record], http: httpx.AsyncClient
) -> None:
    held_event = subscription_event(
        "customer.subscription.created",
        sub="sub_held",
        customer=HELD_CUSTOMER,
        queue_customer_id="cust_held",
        created=T0 + 2,
    )
    body, header = signed(held_event, values.WEBHOOK_SECRET)
    await db.execute(LOCK_HELD, HELD_CUSTOMER)
    try:
        held = asyncio.create_task(
            http.post(WEBHOOK, content=body, headers={"Stripe-Signature": header})
        )

        async def waiting() -> bool:
            return bool(await db.fetchval(WAITING_FOR_LOCK))

        await until(waiting, 30, "the webhook waiting on the customer's lock")
        sent = time.monotonic()
        podman.podman("kill", "--signal", signal.Signals.SIGTERM.name, name)

        async def closed() -> bool:
            return not accepts(port)

        # shutting down: no worker accepts any more, the request is still held
        await until(closed, SHUTDOWN_BOUND, "the port closed after SIGTERM")
        assert not held.done()
    finally:
        await db.execute(UNLOCK_HELD, HELD_CUSTOMER)
    answer = await asyncio.wait_for(held, SHUTDOWN_BOUND)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "applied"
    waited = await asyncio.to_thread(
        podman.podman, "wait", name, timeout=SHUTDOWN_BOUND + 5, check=False
    )
    elapsed = time.monotonic() - sent
    assert waited.stdout.strip() == "0", waited.stdout + waited.stderr
    assert elapsed < SHUTDOWN_BOUND
    assert (
        await db.fetchval(
            "SELECT outcome FROM processed_stripe_events WHERE event_id = $1", held_event["id"]
        )
        == "applied"
    )
    print(f"SIGTERM with a request held: answered 200 and exited 0 in {elapsed:.2f}s")
