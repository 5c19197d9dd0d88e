"""Queue and supabase/stripe-sync-engine side by side: the same events, the same generator.

    .venv/bin/python -m bench.run --only side-by-side --peer-dir /work/peers/stripe-sync-engine

Each repetition starts, each on its own fresh database of the same Postgres server,
`raxx-queue serve` with 1 worker, with 2 workers, and the peer's fastify app (from an
already built checkout, `--peer-dir`; see docs/performance.md for how to get and build
it). The three stay up together and are driven in turn, level by level, by the same
load generator (bench/loadgen.py, a separate process) with the same deliveries, so
that the machine's drift between them is seconds, not minutes; the order rotates from
one repetition to the next. Each takes the same warm-up first (unmeasured).

Two workloads, each its own run: `fullsize` (bench/fullsize.py: full-size subscription
and invoice events of 10,000 customers, every delivery applying) and `mixed` (the
stream of bench/stream.py: duplicates, late and ignored events). Per segment: req/s,
latency percentiles, errors, and CPU ms per delivery of the service's processes and of
the Postgres backends of its database (read from /proc), of the load generator, and
the WAL bytes per delivery of its own database (pg_walinspect; the server-wide figure is
kept in the JSON). A Queue segment ends when its audit rows are sealed (its sealer
works in rounds beside the requests), so that sealing is in its CPU and WAL. After each
repetition Queue's databases are checked (every delivery recorded with the intended
outcome, the audit chain verified by the service's own route, one mirror row per
customer) and the peer's (each object's `last_synced_at` is the `created` of the newest
event delivered for it).

The peer is configured from its README and src/utils/config.ts: its own webhook
secret, `BACKFILL_RELATED_ENTITIES=false`, `AUTO_EXPAND_LISTS=false`,
`REVALIDATE_OBJECTS_VIA_STRIPE_API` empty (no re-read of objects from Stripe), a dummy
`STRIPE_SECRET_KEY` that nothing uses (checked with strace: its only connections are to
Postgres), `MAX_POSTGRES_CONNECTIONS` at its default 10 (Queue's pool is 10 per
worker), its migrations run at start. It binds every interface (0.0.0.0, not
configurable); the bench sends to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families
from tests.support import values
from tests.support.database import create_database, drop_database
from tests.support.process import free_port, service_pids, wait_until

from bench.fullsize import FullSizeStream, describe
from bench.procstat import CpuMeter, load_average, postgres_backends
from bench.stream import CustomerBlocks

LEVELS = (1, 4, 8, 16, 32, 64)
QUICK_LEVELS = (1, 16, 64)
# the peer's endpoint secret, drawn for each run
PEER_SECRET = "whsec_" + secrets.token_hex(16)
PEER_API_KEY = "peer-bench-api-key-not-used-8c1e"
# event types of the mixed stream the peer has no handler for: it answers 400
PEER_UNHANDLED = frozenset({"payout.paid"})
QUEUE_OUTCOMES = frozenset({"applied", "duplicate", "stale", "ignored"})
TARGETS = ("queue-1w", "queue-2w", "peer")


@dataclass
class Workload:
    name: str  # fullsize | mixed
    warmup: list[bytes]
    levels: list[list[bytes]]  # one list of deliveries per concurrency level
    duplicates: list[int]  # intended duplicates per level (Queue)
    queue_customers: int  # customers the whole run touches (mirror rows expected)


def fullsize_workload(customers: int, per_level: int, levels: int) -> Workload:
    stream = FullSizeStream(customers)
    warmup = stream.take(customers)  # round 0: each customer's subscription created
    parts = [stream.take(per_level) for _ in range(levels)]
    return Workload("fullsize", warmup, parts, [0] * levels, customers)


def mixed_workload(warmup_customers: int, per_level: int, levels: int) -> Workload:
    population = CustomerBlocks(warmup_customers + per_level * levels, seed=7)
    warm = population.take(warmup_customers)
    blocks = [population.take(per_level) for _ in range(levels)]
    return Workload(
        "mixed",
        warm.bodies,
        [b.bodies for b in blocks],
        [b.duplicates for b in blocks],
        warmup_customers + per_level * levels,
    )


@dataclass
class Segment:
    target: str
    level: int
    result: dict[str, Any]
    errors: int


@dataclass
class Repetition:
    order: tuple[str, ...]
    segments: list[Segment] = field(default_factory=list)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    load: list[str] = field(default_factory=list)


@dataclass
class Target:
    """One running receiver: where to send, what to measure."""

    name: str
    url: str
    database_url: str
    pids: list[int]
    spec: dict[str, Any]


def peer_checkout(peer_dir: Path) -> tuple[Path, str]:
    """(the fastify app's built entry point, the checkout's commit), or SystemExit."""
    server = peer_dir / "packages" / "fastify-app" / "dist" / "src" / "server.js"
    if not server.is_file():
        raise SystemExit(
            f"{server} not found: build the peer first (its README: pnpm install, pnpm -r build)"
        )
    commit = subprocess.run(
        ["git", "-C", str(peer_dir), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return server, commit or "unknown"


class SideBySide:
    def __init__(
        self, bench: Any, peer_dir: Path | None, reps: int, levels: tuple[int, ...]
    ) -> None:
        self.bench = bench  # bench.run.Bench: template, clones, `raxx-queue serve`
        self.peer_dir = peer_dir
        self.reps = reps
        self.levels = levels
        self.node = shutil.which("node") or "node"
        self.wal_database = ""

    # ---- the peer --------------------------------------------------------------

    @contextmanager
    def peer(self, database_url: str, label: str) -> Iterator[tuple[str, int]]:
        """The peer's fastify app on its own database; (url, pid)."""
        assert self.peer_dir is not None
        server, _ = peer_checkout(self.peer_dir)
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "NODE_ENV": "production",
            "DATABASE_URL": database_url,
            "PORT": str(port),
            "STRIPE_WEBHOOK_SECRET": PEER_SECRET,
            "API_KEY": PEER_API_KEY,
            "STRIPE_SECRET_KEY": "sk_test_bench_dummy_never_used",
            "BACKFILL_RELATED_ENTITIES": "false",
            "AUTO_EXPAND_LISTS": "false",
            "REVALIDATE_OBJECTS_VIA_STRIPE_API": "",
        }
        log = (self.bench.scratch / f"peer-{label}.log").open("wb")
        process = subprocess.Popen(
            [self.node, str(server)],
            cwd=server.parents[2],  # its dotenv reads .env from here: there is none
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:

            def ready() -> bool:
                if process.poll() is not None:
                    raise RuntimeError(f"peer exited with {process.returncode}; see {log.name}")
                try:
                    return httpx.get(f"{url}/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(ready, timeout=60, what="peer ready")
            yield url, process.pid
        finally:
            process.terminate()
            process.wait(timeout=30)
            log.close()

    # ---- segments ------------------------------------------------------------------

    def bodies_file(self, name: str, bodies: list[bytes]) -> str:
        path = self.bench.scratch / f"{name}.ndjson"
        if not path.exists():
            path.write_bytes(b"\n".join(bodies) + b"\n")
        return str(path)

    async def segment(
        self,
        server: asyncpg.Connection[Any],
        target: Target,
        bodies: str,
        concurrency: int,
        wal: bool = True,
    ) -> dict[str, Any]:
        spec_path = self.bench.scratch / "spec.json"
        spec_path.write_bytes(
            orjson.dumps({**target.spec, "bodies": bodies, "concurrency": concurrency})
        )
        database = target.database_url.rsplit("/", 1)[1]
        harness = await asyncpg.connect(target.database_url)  # not counted below
        try:
            own = await harness.fetchval("SELECT pg_backend_pid()")
            service, postgres = CpuMeter(), CpuMeter()
            statements_before = statement_totals(target)
            wal_before = await server.fetchval("SELECT pg_current_wal_lsn()")
            service.start(target.pids)
            postgres.start([p for p in postgres_backends(database) if p != own])
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.loadgen", str(spec_path),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"load generator failed ({process.returncode})")
            if target.name.startswith("queue"):  # its sealer's last round, in its CPU
                await wait_sealed(harness)
            backends = [p for p in postgres_backends(database) if p != own]
            service_cpu, postgres_cpu = service.stop(target.pids), postgres.stop(backends)
            statements_after = statement_totals(target)
            wal_after = await server.fetchval("SELECT pg_current_wal_lsn()")
            oid = await harness.fetchval(
                "SELECT oid FROM pg_database WHERE datname = current_database()"
            )
        finally:
            await harness.close()
        result: dict[str, Any] = orjson.loads(out)
        requests = max(1, result["requests"])
        result["service_cpu_ms_per_request"] = service_cpu / requests * 1000
        result["postgres_cpu_ms_per_request"] = postgres_cpu / requests * 1000
        wal = await server.fetchval("SELECT pg_wal_lsn_diff($1, $2)", wal_after, wal_before)
        result["server_wal_bytes_per_request"] = float(wal) / requests
        result["events_per_statement"] = None
        if statements_before is not None and statements_after is not None:
            statements = statements_after[0] - statements_before[0]
            if statements:
                result["events_per_statement"] = (
                    statements_after[1] - statements_before[1]
                ) / statements
        result["wal_bytes_per_request"] = None
        if wal:
            # readable up to what is flushed: every commit of the segment is, the tail of
            # others' writes may not be
            end = await server.fetchval(
                "SELECT least($1::pg_lsn, pg_current_wal_flush_lsn())", wal_after
            )
            try:
                own = await server.fetchval(WAL_OF_DATABASE, wal_before, end, f"%/{oid}/%")
                result["wal_bytes_per_request"] = float(own) / requests
            except asyncpg.PostgresError:
                pass  # e.g. a checkpoint recycled the segment's WAL before it was read
        return result

    # ---- one repetition ------------------------------------------------------------------

    @contextmanager
    def targets(self, urls: dict[str, str], rep: int, workload: str) -> Iterator[list[Target]]:
        with ExitStack() as stack:
            running = []
            for name in TARGETS:
                label = f"{workload}-rep{rep}-{name}"
                if name == "peer":
                    if self.peer_dir is None:
                        continue
                    url, pid = stack.enter_context(self.peer(urls[name], label))
                    spec = {
                        "kind": "webhook",
                        "url": url,
                        "secret": PEER_SECRET,
                        "path": "/webhooks",
                        "status_only": True,
                    }
                    running.append(Target(name, url, urls[name], [pid], spec))
                    continue
                workers = 1 if name == "queue-1w" else 2
                service = stack.enter_context(self.bench.service(urls[name], workers, label))
                spec = {"kind": "webhook", "url": service.url, "secret": values.WEBHOOK_SECRET}
                pids = service_pids(service.process.pid)
                running.append(Target(name, service.url, urls[name], pids, spec))
            yield running

    async def repetition(self, workload: Workload, template: str, rep: int) -> Repetition:
        names = [n for n in TARGETS if n != "peer" or self.peer_dir is not None]
        shift = (rep - 1) % len(names)
        result = Repetition(order=tuple(names[shift:] + names[:shift]))
        result.load.append(load_average())
        urls: dict[str, str] = {}
        server = await asyncpg.connect(self.wal_database)
        try:
            for name in names:  # Queue's databases migrated (a template copy); the peer's empty
                if name == "peer":
                    urls[name] = await create_database(self.bench.server, prefix="peer_bench")
                else:
                    urls[name] = await self.bench.clone(template)
            with self.targets(urls, rep, workload.name) as running:
                by_name = {t.name: t for t in running}
                warmup = self.bodies_file(f"{workload.name}-warmup", workload.warmup)
                for name in result.order:
                    await self.segment(server, by_name[name], warmup, 16, wal=False)
                for i, (level, bodies) in enumerate(zip(self.levels, workload.levels, strict=True)):
                    path = self.bodies_file(f"{workload.name}-level{i}", bodies)
                    for name in result.order:
                        measured = await self.segment(server, by_name[name], path, level)
                        errors = segment_errors(
                            name,
                            measured,
                            bodies,
                            workload.duplicates[i],
                            every_applies=workload.name == "fullsize",
                        )
                        result.segments.append(Segment(name, level, measured, errors))
                    print(
                        f"    c={level}: "
                        + ", ".join(
                            f"{s.target} {s.result['throughput']:.0f}/s"
                            for s in result.segments[-len(names) :]
                        ),
                        flush=True,
                    )
                for target in running:
                    delivered = [workload.warmup, *workload.levels]
                    result.checks[target.name] = await check(target, workload, delivered)
                    print(f"    check {target.name}: {result.checks[target.name]}", flush=True)
        finally:
            await server.close()
            for url in urls.values():
                await drop_database(self.bench.server, url)
        result.load.append(load_average())
        return result

    async def run(self, workload: Workload, template: str) -> list[Repetition]:
        # where the WAL is read from: a database of its own with pg_walinspect
        self.wal_database = await create_database(self.bench.server, prefix="queue_bench_wal")
        conn = await asyncpg.connect(self.wal_database)
        try:
            await conn.execute("CREATE EXTENSION pg_walinspect")
        finally:
            await conn.close()
        reps = []
        try:
            for rep in range(1, self.reps + 1):
                print(f"  {workload.name} rep {rep} (load {load_average()})", flush=True)
                reps.append(await self.repetition(workload, template, rep))
        finally:
            await drop_database(self.bench.server, self.wal_database)
        return reps


# The WAL records of one database (pg_walinspect): those touching its relations, and the
# commit records of the transactions that did. The server's WAL also holds whatever else
# the machine's Postgres was doing meanwhile.
WAL_OF_DATABASE = """
WITH r AS (SELECT xid, record_length, block_ref FROM pg_get_wal_records_info($1, $2)),
     ours AS (SELECT DISTINCT xid FROM r WHERE block_ref LIKE $3 AND xid <> 0)
SELECT coalesce(sum(record_length), 0) FROM r
 WHERE block_ref LIKE $3 OR xid IN (SELECT xid FROM ours)
"""


async def wait_sealed(conn: asyncpg.Connection[Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    query = "SELECT count(*) FROM billing_action_log WHERE row_hash IS NULL"
    while await conn.fetchval(query):
        if time.monotonic() > deadline:
            raise TimeoutError("audit rows still unsealed")
        await asyncio.sleep(0.05)


def segment_errors(
    target: str, result: dict[str, Any], bodies: list[bytes], dups: int, every_applies: bool
) -> int:
    """Answers other than the intended ones."""
    outcomes: dict[str, int] = result["outcomes"]
    if every_applies and target != "peer":  # the full-size workload: nothing but applied
        return sum(n for o, n in outcomes.items() if o != "applied")
    if target == "peer":
        unhandled = sum(1 for b in bodies if orjson.loads(b)["type"] in PEER_UNHANDLED)
        wrong = sum(n for o, n in outcomes.items() if o not in ("ok", "http_400"))
        return wrong + abs(outcomes.get("http_400", 0) - unhandled)
    wrong = sum(n for o, n in outcomes.items() if o not in QUEUE_OUTCOMES)
    return wrong + abs(outcomes.get("duplicate", 0) - dups)


def newest_created(delivered: list[list[bytes]], kinds: tuple[str, ...]) -> dict[str, int]:
    """For each object of these kinds: the `created` of the newest event delivered for it."""
    newest: dict[str, int] = {}
    for bodies in delivered:
        for raw in bodies:
            event = orjson.loads(raw)
            obj = event["data"]["object"]
            if obj.get("object") in kinds and obj.get("id"):
                newest[obj["id"]] = max(newest.get(obj["id"], 0), event["created"])
    return newest


async def check(target: Target, workload: Workload, delivered: list[list[bytes]]) -> dict[str, Any]:
    """What the run left in the target's database."""
    conn = await asyncpg.connect(target.database_url)
    try:
        if target.name == "peer":
            return await check_peer(conn, workload, delivered)
        return await check_queue(conn, target, workload, delivered)
    finally:
        await conn.close()


async def check_queue(
    conn: asyncpg.Connection[Any], target: Target, workload: Workload, delivered: list[list[bytes]]
) -> dict[str, Any]:
    sent = sum(len(bodies) for bodies in delivered)
    outcomes = {
        r["outcome"]: r["n"]
        for r in await conn.fetch(
            "SELECT outcome, count(*) AS n FROM processed_stripe_events GROUP BY outcome"
        )
    }
    distinct = len({orjson.loads(raw)["id"] for bodies in delivered for raw in bodies})
    applied = outcomes.get("applied", 0)
    audit_rows = await conn.fetchval("SELECT count(*) FROM billing_action_log")
    mirror_rows = await conn.fetchval("SELECT count(*) FROM billing_subscription_mirror")
    await wait_sealed(conn)
    async with httpx.AsyncClient(base_url=target.url, timeout=120) as http:
        response = await http.get(
            "/api/internal/billing/audit/verify", headers=values.bearer(values.CONSOLE_TOKEN)
        )
    verify = response.json()
    ok = (
        sum(outcomes.values()) == distinct
        and verify.get("ok") is True
        and verify.get("unsealed") == 0
        and mirror_rows == workload.queue_customers
    )
    if workload.name == "fullsize":  # every delivery applies and is audited
        ok = ok and applied == sent and audit_rows == sent
    return {
        "ok": ok,
        "sent": sent,
        "events": outcomes,
        "audit_rows": audit_rows,
        "audit_verify": verify,
        "mirror_rows": mirror_rows,
    }


async def check_peer(
    conn: asyncpg.Connection[Any], workload: Workload, delivered: list[list[bytes]]
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    ok = True
    for kind, table in (("subscription", "subscriptions"), ("invoice", "invoices")):
        expected = newest_created(delivered, (kind,))
        rows = await conn.fetch(
            f"SELECT id, extract(epoch FROM last_synced_at)::bigint AS at FROM stripe.{table}"  # noqa: S608
        )
        stored = {r["id"]: r["at"] for r in rows}
        behind = sum(1 for k, at in expected.items() if stored.get(k) != at)
        found[table] = {"rows": len(stored), "expected": len(expected), "not_newest": behind}
        ok = ok and behind == 0
    found["ok"] = ok and workload.name in ("fullsize", "mixed")
    return found


# ---- reporting ----------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def by(rep: Repetition, target: str, level: int) -> dict[str, Any]:
    return next(s.result for s in rep.segments if s.target == target and s.level == level)


STATEMENT_EVENTS = "queue_webhook_statement_events"


def statement_totals(target: Target) -> tuple[float, float] | None:
    """(statements, events) Queue's workers have applied so far, from its /metrics; None
    for the peer."""
    if not target.name.startswith("queue"):
        return None
    response = httpx.get(
        f"{target.url}/metrics",
        headers={"Authorization": f"Bearer {values.METRICS_TOKEN}"},
        timeout=10,
    )
    response.raise_for_status()
    totals = {"count": 0.0, "sum": 0.0}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            for suffix in totals:
                if sample.name == f"{STATEMENT_EVENTS}_{suffix}":
                    totals[suffix] += sample.value
    return totals["count"], totals["sum"]


def table(reps: list[Repetition], levels: tuple[int, ...]) -> str:
    names = {"queue-1w": "Queue, 1 worker", "queue-2w": "Queue, 2 workers", "peer": "peer"}
    lines = [
        "| receiver | concurrency | req/s | p50 ms | p95 ms | p99 ms | errors "
        "| CPU ms/delivery: service, Postgres, load generator "
        "| WAL bytes/delivery (its database) | events per statement |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    targets = [t for t in TARGETS if any(s.target == t for s in reps[0].segments)]
    for target in targets:
        for level in levels:
            rows = [by(rep, target, level) for rep in reps]
            errors = sum(
                s.errors
                for rep in reps
                for s in rep.segments
                if (s.target, s.level) == (target, level)
            )

            def m(key: str, rows: list[dict[str, Any]] = rows) -> float:
                return median([r[key] for r in rows if r.get(key) is not None])

            lines.append(
                f"| {names[target]} | {level} | {m('throughput'):.0f} | {m('p50_ms'):.1f} "
                f"| {m('p95_ms'):.1f} | {m('p99_ms'):.1f} | {errors} "
                f"| {m('service_cpu_ms_per_request'):.2f}, {m('postgres_cpu_ms_per_request'):.2f}, "
                f"{m('loadgen_cpu_ms_per_request'):.2f} | {m('wal_bytes_per_request'):.0f} "
                f"| {per_statement(rows)} |"
            )
    return "\n".join(lines)


def per_statement(rows: list[dict[str, Any]]) -> str:
    values = [r["events_per_statement"] for r in rows if r.get("events_per_statement")]
    return f"{median(values):.1f}" if values else "-"


def verdicts(reps: list[Repetition], levels: tuple[int, ...], workload: str) -> list[str]:
    """The issue's targets, each a median of ratios taken within a repetition."""
    lines: list[str] = []
    errors = sum(s.errors for rep in reps for s in rep.segments)
    checks = all(c.get("ok") for rep in reps for c in rep.checks.values())
    lines.append(f"{workload}: errors {errors} {mark(errors == 0)}; checks {mark(checks)}")
    if not any(s.target == "peer" for s in reps[0].segments):
        lines.append(f"{workload}: no peer in this run (no --peer-dir): ratios skipped")
        return lines

    def tput(rep: Repetition, target: str, level: int) -> float:
        value: float = by(rep, target, level)["throughput"]
        return value

    def peer_best(rep: Repetition) -> int:
        return max(levels, key=lambda c: tput(rep, "peer", c))

    best_levels = [peer_best(rep) for rep in reps]
    lines.append(f"{workload}: peer's best concurrency per repetition: {best_levels}")
    for target, goal in (("queue-1w", 1.5), ("queue-2w", 1.8)):
        at_best = median(
            [tput(r, target, peer_best(r)) / tput(r, "peer", peer_best(r)) for r in reps]
        )
        best = median(
            [max(tput(r, target, c) for c in levels) / tput(r, "peer", peer_best(r)) for r in reps]
        )
        lines.append(
            f"{workload}: {target} / peer at the peer's best concurrency = {at_best:.2f}x "
            f"(target >= {goal}) {mark(at_best >= goal)}; best / best = {best:.2f}x"
        )
    if 1 in levels:
        at_one = median([tput(r, "queue-1w", 1) / tput(r, "peer", 1) for r in reps])
        lines.append(
            f"{workload}: queue-1w / peer at concurrency 1 = {at_one:.2f}x (target >= 1.5) "
            f"{mark(at_one >= 1.5)}"
        )
    if 16 in levels:
        for target in ("queue-1w", "queue-2w"):
            q = median([by(r, target, 16)["p99_ms"] for r in reps])
            p = median([by(r, "peer", 16)["p99_ms"] for r in reps])
            lines.append(
                f"{workload}: p99 at concurrency 16, {target} {q:.1f} ms vs peer {p:.1f} ms "
                f"(target <=) {mark(q <= p)}"
            )
    return lines


def mark(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def workload_summary(workload: Workload) -> str:
    measured = describe([b for bodies in workload.levels for b in bodies])
    return (
        f"{workload.name}: warm-up {len(workload.warmup)} deliveries, then "
        f"{measured['deliveries']} measured over {len(workload.levels)} levels, "
        f"{measured['bytes_mean']:.0f} bytes a delivery on average "
        f"(smallest {measured['bytes_min']}); {measured['types']}"
    )
