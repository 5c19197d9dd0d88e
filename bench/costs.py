"""Where one webhook's time goes, step by step: in the service's code and in Postgres.

Used by `python -m bench.profile --steps` and `--postgres` (see there). The sampling
profile (py-spy) shows the whole process by layer; these two isolate the webhook's own
work, which a sampling profile smears over the event loop:

- steps: each step of the webhook path timed in process on the same deliveries, one
  step over all of them at a time (so each runs warm): the signature check, the JSON
  parse, the nesting check, normalisation into the function's parameter, and the
  parameter's encoding for the driver;
- postgres: the deliveries applied straight through `billing_apply_stripe_event` on one
  connection (no HTTP, no pool), on a fresh database with `track_functions = 'pl'`:
  the backend's CPU per event, each PL/pgSQL function's own time per event, the rows
  each event writes per table (HOT or not: a non-HOT update writes every index), the
  WAL it generates (pg_current_wal_lsn: server-wide; and this database's own records,
  by kind and relation, read back with pg_walinspect), what sealing the audit rows
  costs afterwards (the sealer's backend CPU and WAL), and what the stored payload
  costs (its jsonb parse, its compressed size).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson
from tests.support import values

from bench.procstat import cpu_seconds
from raxx_queue.jsonio import dumps_str
from raxx_queue.simulator.events import sign
from raxx_queue.webhooks.batching import APPLY_EVENT
from raxx_queue.webhooks.intake import delivery_params
from raxx_queue.webhooks.pipeline import EventContext, apply_params, check_nesting
from raxx_queue.webhooks.signature import verify_signature

TIERS = {values.PRICE_PRO: "pro", values.PRICE_PRO_PLUS: "pro_plus"}
TABLES = (
    "processed_stripe_events",
    "billing_customer",
    "billing_subscription",
    "billing_invoice",
    "billing_subscription_mirror",
    "billing_action_log",
)


def _each(bodies: list[Any], step: Callable[[Any], object], repeat: int) -> float:
    """Microseconds per item of `step`, the best of `repeat` passes."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for item in bodies:
            step(item)
        best = min(best, time.process_time() - started)
    return best / len(bodies) * 1e6


def steps(bodies: list[bytes], repeat: int = 5) -> list[tuple[str, float]]:
    """(step, µs of CPU per delivery) for the webhook's own work, in path order."""
    now = int(time.time())
    signed = [(body, sign(body, values.WEBHOOK_SECRET, now)) for body in bodies]
    secrets = [values.WEBHOOK_SECRET]
    events = [orjson.loads(body) for body in bodies]
    context = EventContext(price_tiers=TIERS, grace_days=7, request_id="req_0123456789abcdef")
    params = [apply_params(event, context) for event in events]
    return [
        (
            "signature: HMAC-SHA256 via stripe.WebhookSignature (decode, re-encode, compare)",
            _each(signed, lambda s: verify_signature(s[0], s[1], secrets, 300, now), repeat),
        ),
        ("JSON parse (orjson.loads)", _each(bodies, orjson.loads, repeat)),
        (
            "nesting check (check_nesting: bracket count, then a walk when > 64)",
            _each(list(zip(bodies, events, strict=True)), lambda p: check_nesting(*p), repeat),
        ),
        (
            "normalisation (apply_params: envelope, build_change, the parameter dict)",
            _each(events, lambda e: apply_params(e, context), repeat),
        ),
        (
            "parameter encoding (dumps_str of the parameter, payload included)",
            _each(params, dumps_str, repeat),
        ),
    ]


def _backend_cpu(pid: int) -> float:
    return cpu_seconds(pid)


async def postgres(database_url: str, bodies: list[bytes], warm: int) -> dict[str, Any]:
    """Postgres's side of applying the deliveries; the first `warm` are not counted."""
    conn = await asyncpg.connect(database_url)
    await conn.execute(
        f"ALTER DATABASE \"{database_url.rsplit('/', 1)[1]}\" SET track_functions = 'pl'"
    )
    await conn.close()
    conn = await asyncpg.connect(database_url)  # a session with the setting
    try:
        await conn.set_type_codec(
            "jsonb", encoder=str, decoder=str, schema="pg_catalog", format="text"
        )
        context = EventContext(price_tiers=TIERS, grace_days=7)
        params = [
            (orjson.dumps(param).decode(), raw)
            for param, raw in (delivery_params(body, context) for body in bodies)
        ]
        statement = await conn.prepare(APPLY_EVENT)
        for param, raw in params[:warm]:
            await statement.fetchrow(param, raw)
        measured = params[warm:]
        count = len(measured)
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("SELECT 1")  # the warm-up's counts flushed, then reset
        await conn.execute("SELECT pg_stat_reset()")
        tables_before = await _table_stats(conn)
        wal_before = await conn.fetchval("SELECT pg_current_wal_lsn()")
        cpu_before = _backend_cpu(pid)
        outcomes: dict[str, int] = {}
        started = time.perf_counter()
        for param, raw in measured:
            row = await statement.fetchrow(param, raw)
            assert row is not None
            outcomes[row["outcome"]] = outcomes.get(row["outcome"], 0) + 1
        elapsed = time.perf_counter() - started
        cpu = _backend_cpu(pid) - cpu_before
        wal_after = await conn.fetchval("SELECT pg_current_wal_lsn()")
        wal = await conn.fetchval("SELECT pg_wal_lsn_diff($1, $2)", wal_after, wal_before)
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("SELECT 1")  # the flush happens at the end of a statement
        functions = await conn.fetch(
            "SELECT funcname, calls, self_time, total_time FROM pg_stat_user_functions "
            "ORDER BY self_time DESC"
        )
        tables_after = await _table_stats(conn)
        wal_records = await _wal_breakdown(conn, wal_before, wal_after)
        sealing = await _sealing(conn, database_url)
        payload = await _payload_costs(conn, bodies[warm:])
        indexes = await conn.fetch(
            "SELECT tablename, count(*) AS n FROM pg_indexes WHERE schemaname = 'public' "
            "GROUP BY tablename ORDER BY tablename"
        )
    finally:
        await conn.close()
    writes = {
        table: {
            key: (tables_after[table][key] - tables_before[table][key]) / count
            for key in ("n_tup_ins", "n_tup_upd", "n_tup_hot_upd")
        }
        for table in TABLES
    }
    return {
        "events": count,
        "outcomes": outcomes,
        "wall_ms_per_event": elapsed / count * 1000,
        "backend_cpu_ms_per_event": cpu / count * 1000,
        "wal_bytes_per_event": float(wal) / count,
        "functions_ms_per_event": [
            {
                "function": r["funcname"],
                "calls_per_event": r["calls"] / count,
                "self_ms": r["self_time"] / count,
                "total_ms": r["total_time"] / count,
            }
            for r in functions
        ],
        "rows_per_event": writes,
        "wal_of_this_database": {
            "bytes_per_event": sum(r["bytes"] for r in wal_records) / count,
            "by_record": [
                {**r, "bytes_per_event": r["bytes"] / count, "fpi_per_event": r["fpi"] / count}
                for r in wal_records
            ],
        },
        "sealing": {key: value / count for key, value in sealing.items()},
        "indexes": {r["tablename"]: r["n"] for r in indexes},
        "payload": payload,
    }


WAL_OF_DATABASE = """
WITH r AS (
    SELECT w.*, substring(w.block_ref FROM 'rel [0-9]+/[0-9]+/([0-9]+)')::oid AS filenode
      -- pg_walinspect refuses an end past the flushed WAL (the sealer's last writes
      -- may not be flushed yet): those few records go uncounted
      FROM pg_get_wal_records_info($1, least($2::pg_lsn, pg_current_wal_flush_lsn())) AS w
), ours AS (
    SELECT DISTINCT xid FROM r WHERE block_ref LIKE '%/' || $3 || '/%' AND xid <> 0
)
SELECT r.resource_manager || ' ' || r.record_type || ' ' ||
       coalesce((SELECT coalesce(t.relname, c.relname) FROM pg_class AS c
                   LEFT JOIN pg_class AS t ON t.reltoastrelid = c.oid
                  WHERE c.relfilenode = r.filenode
                     OR c.oid = (SELECT i.indrelid FROM pg_index AS i
                                   JOIN pg_class AS ic ON ic.oid = i.indexrelid
                                  WHERE ic.relfilenode = r.filenode) LIMIT 1), '') ||
       CASE WHEN EXISTS (SELECT 1 FROM pg_class AS ic JOIN pg_index AS i ON i.indexrelid = ic.oid
                          WHERE ic.relfilenode = r.filenode) THEN ' (index)'
            WHEN EXISTS (SELECT 1 FROM pg_class AS c JOIN pg_class AS t
                          ON t.reltoastrelid = c.oid WHERE c.relfilenode = r.filenode)
            THEN ' (toast)' ELSE '' END AS record,
       count(*) AS n, sum(r.record_length) AS bytes, sum(r.fpi_length) AS fpi
  FROM r
 WHERE r.block_ref LIKE '%/' || $3 || '/%' OR r.xid IN (SELECT xid FROM ours)
 GROUP BY 1 ORDER BY 3 DESC
"""


async def _wal_breakdown(
    conn: asyncpg.Connection[Any], start: Any, end: Any
) -> list[dict[str, Any]]:
    """The WAL records of this database between two positions (pg_walinspect), by kind."""
    oid = await conn.fetchval("SELECT oid FROM pg_database WHERE datname = current_database()")
    rows = await conn.fetch(WAL_OF_DATABASE, start, end, str(oid))
    return [
        {"record": r["record"], "n": r["n"], "bytes": float(r["bytes"]), "fpi": float(r["fpi"])}
        for r in rows
    ]


async def _sealing(conn: asyncpg.Connection[Any], database_url: str) -> dict[str, float]:
    """Sealing the rows the run appended, as the service's sealer does: its backend's CPU
    and this database's WAL."""
    from raxx_queue.audit.chain import seal_pending
    from raxx_queue.db.pool import Database

    db = Database(database_url, max_size=1)
    await db.open()
    try:
        async with db.connection() as sealer:
            pid = await sealer.fetchval("SELECT pg_backend_pid()")
        before, wal_before = cpu_seconds(pid), await conn.fetchval("SELECT pg_current_wal_lsn()")
        started = time.process_time()
        while await seal_pending(db, values.AUDIT_KEY.encode()):
            pass
        python = time.process_time() - started
        cpu = cpu_seconds(pid) - before
        wal_after = await conn.fetchval("SELECT pg_current_wal_lsn()")
    finally:
        await db.close()
    wal = await _wal_breakdown(conn, wal_before, wal_after)
    return {
        "postgres_cpu_ms": cpu * 1000,
        "python_cpu_ms": python * 1000,
        "wal_bytes": sum(r["bytes"] for r in wal),
    }


async def _table_stats(conn: asyncpg.Connection[Any]) -> dict[str, dict[str, int]]:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("SELECT 1")
    rows = await conn.fetch(
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
    )
    return {r["relname"]: dict(r) for r in rows}


async def _payload_costs(conn: asyncpg.Connection[Any], bodies: list[bytes]) -> dict[str, Any]:
    """The stored payload: its size as text and as stored, and its text -> jsonb parse."""
    sizes = await conn.fetchrow(
        "SELECT avg(octet_length(payload::text)) AS text_bytes, "
        "avg(pg_column_size(payload)) AS stored_bytes FROM processed_stripe_events"
    )
    await conn.execute("CREATE TEMP TABLE bench_payload (body text)")
    await conn.executemany("INSERT INTO bench_payload VALUES ($1)", [(b.decode(),) for b in bodies])
    # the parse alone, server-side: the same loop over the texts with and without the cast
    loop = """
        DO $$
        DECLARE started timestamptz := clock_timestamp(); n bigint; v %s;
        BEGIN
            FOR i IN 1..3 LOOP
                FOR v IN SELECT body%s FROM bench_payload LOOP NULL; END LOOP;
            END LOOP;
            SELECT count(*) INTO n FROM bench_payload;
            PERFORM set_config('bench.loop_ms',
                (extract(epoch FROM clock_timestamp() - started) * 1000 / (3 * n))::text,
                false);
        END $$
    """
    timings = []
    for kind, cast in (("text", ""), ("jsonb", "::jsonb")):
        await conn.execute(loop % (kind, cast))
        timings.append(await conn.fetchval("SELECT current_setting('bench.loop_ms')::float8"))
    parse_ms = timings[1] - timings[0]
    assert sizes is not None
    return {
        "text_bytes": float(sizes["text_bytes"] or 0),
        "stored_bytes": float(sizes["stored_bytes"] or 0),
        "jsonb_parse_ms": parse_ms,
    }
