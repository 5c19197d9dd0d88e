"""The load generator: one segment of load, run in its own process, results as JSON on stdout.

    python -m bench.loadgen SPEC.json

It is kept lean so that it takes as little of the machine's CPU as possible from the
service it measures: raw HTTP/1.1 over asyncio streams on uvloop, one keep-alive
connection per unit of concurrency, every request built (and every webhook body
signed) before the clock starts. Kinds of segment:

- `webhook`: POST each body of an NDJSON file, signed with the endpoint secret, to
  `path` (Queue's webhook route unless given; `status_only` for a receiver whose
  answer names no outcome, such as the peer of bench/sidebyside.py);
- `get`: GET a list of paths round-robin for a fixed time;
- `sql`: the storage ceiling - the same database call per event as the service,
  `billing_apply_stripe_event`, straight through asyncpg, no HTTP.

Closed loop (`rate` null: each connection sends its next request when the last one
is answered) or open loop (`rate` per second: request i is due at start + i/rate and
its latency is counted from then, so a stalled server cannot hide its queueing).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import uvloop

from bench.procstat import CpuMeter
from raxx_queue.db.pool import Database

IDLE_RECONNECT_S = 3.0
SIGN_CHUNK = 20_000  # longer streams are signed a chunk ahead, within the tolerance
Send = Callable[[int], Awaitable[str]]


def percentile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return float("nan")
    rank = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; requests are pre-built bytes."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def connect(self) -> None:
        self.close()
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, limit=1 << 20
        )
        self.last_used = time.monotonic()

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        # the server closes connections idle for its keep-alive timeout (uvicorn: 5 s);
        # reconnect before that rather than retry a request that may have been applied
        if self.writer is None or time.monotonic() - self.last_used > IDLE_RECONNECT_S:
            await self.connect()
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        self.last_used = time.monotonic()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


WEBHOOK_PATH = "/api/v1/billing/webhook"


def webhook_request(host: str, body: bytes, signature: str, path: str = WEBHOOK_PATH) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Stripe-Signature: {signature}\r\n\r\n"
    ).encode() + body


def get_request(host: str, path: str, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode()


def sign_bodies(
    bodies: Sequence[bytes], secret: str, host: str, path: str = WEBHOOK_PATH
) -> list[bytes]:
    from raxx_queue.simulator.events import sign

    moment = int(time.time())
    return [webhook_request(host, body, sign(body, secret, moment), path) for body in bodies]


async def drive(
    total: int | None,
    duration: float | None,
    concurrency: int,
    rate: float | None,
    send: Send,
    keep_timeline: bool = False,
) -> dict[str, Any]:
    """Run `send(i)` for i = 0.. at the given concurrency; latencies and outcomes."""
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []  # (when it was due, latency), for diagnosis
    outcomes: Counter[str] = Counter()
    counter = iter(range(total if total is not None else sys.maxsize))
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = started + duration if duration is not None else float("inf")

    async def unit() -> None:
        for i in counter:
            due = started + i / rate if rate else time.perf_counter()
            if due >= deadline:
                return
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            outcome = await send(i)
            done = time.perf_counter()
            latencies.append((done - due) * 1000)
            timeline.append((due - started, latencies[-1]))
            outcomes[outcome] += 1
            if done >= deadline:
                return

    await asyncio.gather(*(unit() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    latencies.sort()
    return {
        "timeline": sorted(timeline) if keep_timeline else None,
        "requests": len(latencies),
        "elapsed_s": elapsed,
        "throughput": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "outcomes": dict(outcomes),
        "loadgen_cpu_ms_per_request": cpu / max(1, len(latencies)) * 1000,
    }


def _webhook_outcome(status: int, body: bytes) -> str:
    if status != 200:
        return f"http_{status}"
    outcome: str = orjson.loads(body)["outcome"]
    return outcome


def _status_outcome(status: int, _body: bytes) -> str:
    """For a receiver whose answer names no outcome (the peer): 200 is "ok"."""
    return "ok" if status == 200 else f"http_{status}"


async def run_http(spec: dict[str, Any], bodies: list[bytes]) -> dict[str, Any]:
    url = urlsplit(spec["url"])
    host, port = url.hostname or "127.0.0.1", url.port or 80
    netloc = f"{host}:{port}"
    concurrency: int = spec["concurrency"]
    pool = [HttpConnection(host, port) for _ in range(concurrency)]
    for conn in pool:
        await conn.connect()
    free = deque(pool)  # first in, first out: every connection stays in use
    requests: list[bytes]

    if spec["kind"] == "webhook":
        secret: str = spec["secret"]
        path: str = spec.get("path", WEBHOOK_PATH)
        outcome_of = _status_outcome if spec.get("status_only") else _webhook_outcome
        requests = sign_bodies(bodies[:SIGN_CHUNK], secret, netloc, path)

        async def send(i: int) -> str:
            while i >= len(requests):  # the next chunk, signed shortly before it is due
                start = len(requests)
                chunk = bodies[start : start + SIGN_CHUNK]
                requests.extend(sign_bodies(chunk, secret, netloc, path))
            conn = free.popleft()
            try:
                status, body = await conn.request(requests[i])
            finally:
                free.append(conn)
            return outcome_of(status, body)

        total: int | None = len(bodies)
    else:
        token = spec.get("token")
        requests = [get_request(netloc, path, token) for path in spec["paths"]]

        async def send(i: int) -> str:
            conn = free.popleft()
            try:
                status, _ = await conn.request(requests[i % len(requests)])
            finally:
                free.append(conn)
            return "ok" if status == 200 else f"http_{status}"

        total = spec.get("requests")
    try:
        return await drive(
            total, spec.get("duration"), concurrency, spec.get("rate"), send, "timeline" in spec
        )
    finally:
        for conn in pool:
            conn.close()


async def seal_continuously(db: Database, key: str, stop: asyncio.Event) -> None:
    """The audit sealing the service does for the same events: its sealer's rounds, at
    most one every MIN_INTERVAL_SECONDS."""
    from raxx_queue.audit.sealer import MIN_INTERVAL_SECONDS, AuditSealer
    from raxx_queue.wakeups import Wakeup

    sealer = AuditSealer(db, key.encode(), Wakeup(), enabled=True)
    try:
        while not stop.is_set():
            await sealer.seal_now()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), MIN_INTERVAL_SECONDS)
        await sealer.seal_now()  # what the last round left
    finally:
        await db.close()


async def run_sql(spec: dict[str, Any], bodies: list[bytes]) -> dict[str, Any]:
    """The storage ceiling: the service's database work per event, with nothing around it.

    `billing_apply_stripe_event` per event and, with `audit_key`, the audit chain
    sealed in rounds beside it, as the service's sealer does.
    """
    import asyncpg

    from raxx_queue.webhooks.batching import APPLY_EVENT
    from raxx_queue.webhooks.intake import delivery_params
    from raxx_queue.webhooks.pipeline import EventContext

    context = EventContext(price_tiers=spec["price_tiers"], grace_days=7)
    delivered = [delivery_params(body, context) for body in bodies]
    params = [orjson.dumps(param).decode() for param, _ in delivered]
    raws = [raw for _, raw in delivered]
    concurrency: int = spec["concurrency"]

    async def init(conn: asyncpg.Connection[Any]) -> None:
        # parameters are pre-encoded JSON text: send them as they are
        await conn.set_type_codec(
            "jsonb", encoder=str, decoder=str, schema="pg_catalog", format="text"
        )

    size = min(concurrency, spec.get("max_connections", 32))
    async with asyncpg.create_pool(spec["dsn"], min_size=size, max_size=size, init=init) as pool:

        async def send(i: int) -> str:
            async with pool.acquire() as conn:
                row = await conn.fetchrow(APPLY_EVENT, params[i], raws[i])
            assert row is not None
            outcome: str = row["outcome"]
            return outcome

        # the server processes of this pool, for the CPU Postgres spends per event
        held = [await pool.acquire() for _ in range(size)]
        backends = [await conn.fetchval("SELECT pg_backend_pid()") for conn in held]
        for conn in held:
            await pool.release(conn)
        stop = asyncio.Event()
        sealing = None
        if spec.get("audit_key"):
            sealer_db = Database(spec["dsn"], max_size=1)
            await sealer_db.open()
            async with sealer_db.connection() as conn:  # counted with the others
                backends.append(await conn.fetchval("SELECT pg_backend_pid()"))
            sealing = asyncio.create_task(seal_continuously(sealer_db, spec["audit_key"], stop))
        postgres = CpuMeter()
        postgres.start(backends)
        result = await drive(
            len(params), None, concurrency, spec.get("rate"), send, "timeline" in spec
        )
        if sealing is not None:  # the rows of this segment sealed too, within the count
            stop.set()
            await sealing
        cpu = postgres.stop(backends)
        result["postgres_cpu_ms_per_request"] = cpu / max(1, result["requests"]) * 1000
        return result


def main() -> None:
    spec = orjson.loads(Path(sys.argv[1]).read_bytes())
    bodies = Path(spec["bodies"]).read_bytes().splitlines() if "bodies" in spec else []
    runner = run_sql if spec["kind"] == "sql" else run_http
    result = uvloop.run(runner(spec, bodies))
    timeline = result.pop("timeline")
    if timeline is not None:  # (due, latency ms) of every request, for diagnosis
        Path(spec["timeline"]).write_bytes(orjson.dumps(timeline))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
