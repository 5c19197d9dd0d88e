"""raxx-queue: serve, dev, simulate, migrate, doctor, audit verify, reconcile, events replay,
mirror resume, customers erase."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack

import uvicorn
from pydantic import SecretStr

from raxx_queue.db.budget import warn_if_over_budget
from raxx_queue.db.embedded import start_embedded_postgres
from raxx_queue.db.migrate import MigrationError, deploy, find_migrations_dir
from raxx_queue.dev_command import add_commands as add_dev_commands
from raxx_queue.http_protocol import KEEP_ALIVE_SECONDS, BoundedHttpToolsProtocol
from raxx_queue.logs import configure_logging
from raxx_queue.settings import ConfigError, Settings, load_settings

SHUTDOWN_GRACE_SECONDS = 25

Command = Callable[[argparse.Namespace], int]


def resolve_database(settings: Settings, *, migrate: bool) -> Settings:
    """Outside production, no DATABASE_URL means the embedded Postgres, migrated on start."""
    if settings.database_url is not None:
        return settings
    if settings.is_production:
        raise ConfigError("DATABASE_URL: required in production")
    url = start_embedded_postgres(settings.queue_data_dir)
    if migrate:
        deploy(url, find_migrations_dir(settings.queue_migrations_dir))
    return settings.model_copy(update={"database_url": SecretStr(url)})


def _uvicorn_options(settings: Settings) -> dict[str, object]:
    return {
        "host": "0.0.0.0",  # noqa: S104 - Heroku routes to $PORT on all interfaces
        "port": settings.port,
        # one process per uvicorn server, whatever WEB_CONCURRENCY says (uvicorn reads
        # it too): several are the supervisor's job
        "workers": 1,
        "loop": "uvloop",
        # httptools with a head size limit and head and body deadlines (finding 11)
        "http": BoundedHttpToolsProtocol,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "lifespan": "on",
        "access_log": False,
        "proxy_headers": True,
        "forwarded_allow_ips": "*",
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_SECONDS,
        "log_config": None,
    }


def run_server(settings: Settings, workers: int) -> int:
    from raxx_queue.app import create_app
    from raxx_queue.serving_worker import exit_cleanly_after_shutdown
    from raxx_queue.supervisor import Supervisor

    exit_cleanly_after_shutdown()
    options = _uvicorn_options(settings)
    if workers <= 1:
        app = create_app(settings, freeze_heap=True)
        uvicorn.run(app, **options)  # type: ignore[arg-type]
        return 0
    # workers re-read the environment: hand them the resolved database
    assert settings.database_url is not None
    os.environ["DATABASE_URL"] = settings.database_url.get_secret_value()
    with ExitStack() as stack:
        # the workers' metric files, for the service's life: removed when it stops (a
        # directory the operator named is theirs, and stays)
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            metrics = tempfile.TemporaryDirectory(prefix="queue-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = stack.enter_context(metrics)
        return Supervisor(workers, options).run()


def cmd_serve(_args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings)
    settings = resolve_database(settings, migrate=True)
    warn_if_over_budget(settings, settings.web_concurrency)
    return run_server(settings, settings.web_concurrency)


def cmd_migrate(_args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings)
    migrations = find_migrations_dir(settings.queue_migrations_dir)
    settings = resolve_database(settings, migrate=False)
    dsn = settings.database_dsn()
    assert dsn is not None
    print(deploy(dsn, migrations).strip())
    return 0


async def _verify_audit(settings: Settings) -> dict[str, object]:
    import asyncpg

    from raxx_queue.audit.chain import verify_chain
    from raxx_queue.db.pooling import connect_options

    if settings.billing_audit_hmac_key is None:
        raise ConfigError("BILLING_AUDIT_HMAC_KEY: required to verify the audit chain")
    dsn = settings.database_dsn()
    assert dsn is not None
    conn = await asyncpg.connect(dsn, **connect_options(settings.database_pool_mode))
    try:
        report = await verify_chain(
            conn, settings.billing_audit_hmac_key.get_secret_value().encode()
        )
    finally:
        await conn.close()
    return report.as_dict()


def cmd_audit_verify(_args: argparse.Namespace) -> int:
    """Walk the audit chain; exit 1 and name the first bad row when it is broken."""
    settings = load_settings()
    configure_logging(settings)
    settings = resolve_database(settings, migrate=False)
    report = asyncio.run(_verify_audit(settings))
    print(json.dumps(report))
    return 0 if report["ok"] else 1


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Re-read customers from Stripe and repair drift; --all resumes where it stopped."""
    from raxx_queue.billing.errors import ReconcileRunning
    from raxx_queue.operator_jobs import run_reconcile

    settings = load_settings()
    configure_logging(settings)
    settings = resolve_database(settings, migrate=False)
    try:
        report = asyncio.run(
            run_reconcile(
                settings, queue_customer_id=args.customer, restart=args.restart, rate=args.rate
            )
        )
    except ReconcileRunning as error:
        print(f"reconcile: {error.message}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2, default=str))
    return 0


def cmd_events_replay(args: argparse.Namespace) -> int:
    """Feed events Stripe could not deliver through the webhook pipeline."""
    from raxx_queue.operator_jobs import run_replay
    from raxx_queue.webhooks.errors import ReplayStopped
    from raxx_queue.webhooks.replay import parse_since

    since = parse_since(args.since)
    settings = load_settings()
    configure_logging(settings)
    settings = resolve_database(settings, migrate=False)
    try:
        report = asyncio.run(
            run_replay(settings, since_seconds=since, include_delivered=args.include_delivered)
        )
    except ReplayStopped as stopped:
        print(f"raxx-queue: {stopped.message}; rerun to continue", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


def cmd_mirror_resume(_args: argparse.Namespace) -> int:
    """Re-enable pushes to Raptor after it answered 410 Gone; held rows go out at once."""
    from raxx_queue.operator_jobs import resume_mirror

    settings = load_settings()
    configure_logging(settings)
    settings = resolve_database(settings, migrate=False)
    print(json.dumps(asyncio.run(resume_mirror(settings))))
    return 0


def cmd_customers_erase(args: argparse.Namespace) -> int:
    """Erase one customer's personal data; exit 1 if it is unknown or the Stripe step is
    pending (rerun to retry it)."""
    from raxx_queue.errors import ServiceError
    from raxx_queue.operator_jobs import run_erase

    settings = load_settings()
    configure_logging(settings)
    settings = resolve_database(settings, migrate=False)
    try:
        report = asyncio.run(
            run_erase(
                settings,
                queue_customer_id=args.queue_customer_id,
                stripe_delete=args.stripe == "delete",
            )
        )
    except ServiceError as error:
        print(f"raxx-queue: {error.code}: {error.message}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 1 if report["stripe"]["status"] == "pending" else 0


def cmd_doctor(_args: argparse.Namespace) -> int:
    """Check the configuration, the connection budget and the database."""
    from raxx_queue.doctor import run_doctor

    return run_doctor(sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raxx-queue", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve HTTP on 0.0.0.0:$PORT").set_defaults(func=cmd_serve)
    add_dev_commands(sub)
    sub.add_parser("migrate", help="sqitch deploy --verify").set_defaults(func=cmd_migrate)
    sub.add_parser("doctor", help="check settings, budget, database").set_defaults(func=cmd_doctor)
    audit = sub.add_parser("audit", help="audit chain tools").add_subparsers(
        dest="audit_command", required=True
    )
    audit.add_parser("verify", help="walk the audit chain").set_defaults(func=cmd_audit_verify)

    reconcile = sub.add_parser("reconcile", help="re-read from Stripe and repair drift")
    target = reconcile.add_mutually_exclusive_group(required=True)
    target.add_argument("--all", action="store_true", help="every customer (resumable)")
    target.add_argument("--customer", metavar="QUEUE_CUSTOMER_ID", help="one customer")
    reconcile.add_argument("--restart", action="store_true", help="ignore the checkpoint")
    reconcile.add_argument(
        "--rate", type=float, default=20.0, help="Stripe reads per second (default 20)"
    )
    reconcile.set_defaults(func=cmd_reconcile)

    events = sub.add_parser("events", help="Stripe events").add_subparsers(
        dest="events_command", required=True
    )
    replay = events.add_parser("replay", help="apply events Stripe could not deliver")
    replay.add_argument("--since", required=True, help="how far back, e.g. 6h or 3d")
    replay.add_argument(
        "--include-delivered", action="store_true", help="every event, not only undelivered"
    )
    replay.set_defaults(func=cmd_events_replay)

    mirror = sub.add_parser("mirror", help="the mirror pushed to Raptor").add_subparsers(
        dest="mirror_command", required=True
    )
    mirror.add_parser(
        "resume", help="push again after Raptor answered 410 Gone (held rows go first)"
    ).set_defaults(func=cmd_mirror_resume)

    customers = sub.add_parser("customers", help="billing customers").add_subparsers(
        dest="customers_command", required=True
    )
    erase = customers.add_parser("erase", help="erase a customer's personal data")
    erase.add_argument("queue_customer_id", metavar="QUEUE_CUSTOMER_ID")
    erase.add_argument(
        "--stripe", choices=["delete"], help="also delete the Stripe customer (idempotent)"
    )
    erase.set_defaults(func=cmd_customers_erase)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except (ConfigError, MigrationError) as error:
        print(f"raxx-queue: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
