"""`raxx-queue dev` and `raxx-queue simulate`: Queue on a laptop, with a local Stripe and Raptor.

`dev` runs the embedded Postgres, billing on, generated local secrets (kept in the data
dir), and by default (no Stripe key set, or `--stripe simulator`) the Stripe simulator
and a Raptor sink beside Queue (`raxx_queue.simulator`). It prints the tokens and a
walk through a customer's billing that `simulate` drives.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
from pathlib import Path

from raxx_queue.logs import configure_logging
from raxx_queue.settings import ConfigError, Settings, load_settings

SECRETS_FILE = "dev-secrets.json"
DEV_SECRETS = (
    "QUEUE_SERVICE_TOKEN_RAPTOR",
    "QUEUE_SERVICE_TOKEN_CONSOLE",
    "BILLING_AUDIT_HMAC_KEY",
    "RAPTOR_MIRROR_TOKEN",
)
# the prices the simulator sells (any price id works at the simulator)
SIMULATED_PRICES = {
    "STRIPE_PRICE_ID_PRO": "price_pro_monthly",
    "STRIPE_PRICE_ID_PRO_PLUS": "price_pro_plus_monthly",
}
DEMO_CUSTOMER = "cust_demo"


def data_dir() -> Path:
    return Path(os.environ.get("QUEUE_DATA_DIR", ".queue-data"))


def dev_secrets(directory: Path) -> dict[str, str]:
    """Random local secrets, kept in the data dir so they survive restarts."""
    path = directory / SECRETS_FILE
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    for name in DEV_SECRETS:
        stored.setdefault(name, secrets.token_urlsafe(24))
    stored.setdefault("STRIPE_WEBHOOK_SECRET", "whsec_" + secrets.token_hex(16))
    mirror_secret = base64.b64encode(secrets.token_bytes(32)).decode()
    stored.setdefault("RAPTOR_MIRROR_SIGNING_SECRET", "whsec_" + mirror_secret)
    stored.setdefault("SIMULATOR_STRIPE_KEY", "rk_test_simulator_" + secrets.token_hex(8))
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stored, indent=2))
    path.chmod(0o600)
    return stored


def _stripe_mode(requested: str | None) -> str:
    if requested is not None:
        return requested
    configured = os.environ.get("STRIPE_RESTRICTED_KEY") or os.environ.get("STRIPE_SECRET_KEY")
    return "real" if configured else "simulator"


def cmd_dev(args: argparse.Namespace) -> int:
    """Local development: embedded Postgres, billing on, local peers, tokens printed."""
    from raxx_queue.cli import resolve_database, run_server

    os.environ.setdefault("QUEUE_ENV", "development")
    os.environ.setdefault("FLAG_QUEUE_BILLING", "true")
    os.environ.setdefault("LOG_FORMAT", "console")
    directory = data_dir()
    generated = dev_secrets(directory)
    for name in (*DEV_SECRETS, "STRIPE_WEBHOOK_SECRET", "RAPTOR_MIRROR_SIGNING_SECRET"):
        os.environ.setdefault(name, generated[name])
    if os.environ["QUEUE_ENV"] == "production":
        raise ConfigError("QUEUE_ENV: `raxx-queue dev` refuses to run in production")
    if _stripe_mode(args.stripe) == "real":
        settings = load_settings()
        configure_logging(settings)
        settings = resolve_database(settings, migrate=True)
        print(_tokens(settings), flush=True)
        return run_server(settings, 1)

    from raxx_queue.simulator.dev import local_peers, refuse_unsafe

    refuse_unsafe(os.environ["QUEUE_ENV"], os.environ.get("STRIPE_RESTRICTED_KEY"))
    port = int(os.environ.get("PORT", "8000"))
    with local_peers(
        queue_port=port,
        webhook_secret=os.environ["STRIPE_WEBHOOK_SECRET"].split(",")[0],
        mirror_token=os.environ["RAPTOR_MIRROR_TOKEN"],
        mirror_signing_secrets=os.environ["RAPTOR_MIRROR_SIGNING_SECRET"].split(","),
        shuffle_webhooks=args.shuffle_webhooks,
    ) as peers:
        os.environ.update(
            STRIPE_RESTRICTED_KEY=generated["SIMULATOR_STRIPE_KEY"],
            STRIPE_API_BASE=peers.stripe_url,
            RAPTOR_MIRROR_URL=peers.raptor_url,
        )
        os.environ.pop("STRIPE_SECRET_KEY", None)
        for name, price in SIMULATED_PRICES.items():
            os.environ.setdefault(name, price)
        settings = load_settings()
        configure_logging(settings)
        settings = resolve_database(settings, migrate=True)
        peers.save(directory)
        print(_tokens(settings) + _walk(settings, peers.stripe_url, peers.raptor_url), flush=True)
        return run_server(settings, 1)


def _tokens(settings: Settings) -> str:
    tokens = {name: values[0] for name, values in settings.service_tokens().items() if values}
    return (
        f"\nQueue (development) on http://127.0.0.1:{settings.port}\n"
        f"  raptor token:  {tokens.get('raptor')}\n"
        f"  console token: {tokens.get('console')}\n"
        f"  try: curl -H 'Authorization: Bearer {tokens.get('console')}' "
        f"http://127.0.0.1:{settings.port}/api/v1/billing/customers\n"
    )


def _walk(settings: Settings, stripe_url: str, raptor_url: str) -> str:
    raptor = next(iter(settings.service_tokens()["raptor"]), None)
    # the commands find the running simulator through the data dir
    data = os.environ.get("QUEUE_DATA_DIR")
    simulate = f"QUEUE_DATA_DIR={data} " if data else ""
    simulate += ".venv/bin/raxx-queue simulate"
    body = json.dumps(
        {
            "queue_customer_id": DEMO_CUSTOMER,
            "email": "demo@example.com",
            "plan_tier": "pro",
            "payment_method_id": "pm_card_visa",
        }
    )
    return f"""
Stripe is simulated at {stripe_url}: it sends Queue a signed webhook for every change.
Raptor is a sink at {raptor_url}: each mirror row Queue pushes is printed here (raptor ...).

Walk a customer through billing, in another terminal, from this directory:
  1. subscribe with Stripe's test card 4242 4242 4242 4242 (the customer's browser confirms
     the payment): active, entitled
     curl -s -X POST http://127.0.0.1:{settings.port}/api/v1/billing/subscribe \\
       -H 'Authorization: Bearer {raptor}' -H 'Content-Type: application/json' \\
       -d '{body}'
  2. a renewal payment fails: past_due, still entitled until the grace window ends
     {simulate} fail-payment --customer {DEMO_CUSTOMER}
  3. eight days pass at Stripe: its retries fail too, access is suspended
     {simulate} advance --days 8 --customer {DEMO_CUSTOMER}
"""


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run a scenario on the dev simulator; print what Stripe sent and what Queue did."""
    from raxx_queue.simulator.client import run_scenario

    directory = data_dir()
    token = dev_secrets(directory)["QUEUE_SERVICE_TOKEN_RAPTOR"]
    extra = {name: getattr(args, name, None) for name in ("days", "close", "resume")}
    for line in run_scenario(
        directory, token, args.scenario, queue_customer_id=args.customer, **extra
    ):
        print(line)
    return 0


SCENARIOS = {
    "pay": "the customer pays what is open",
    "fail-payment": "the subscription bills now and the charge fails",
    "cancel": "the subscription is canceled now",
    "delete-customer": "the Stripe customer is deleted",
}


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`dev` and `simulate` on the raxx-queue parser."""
    dev = sub.add_parser("dev", help="local server on the embedded Postgres, with local peers")
    dev.add_argument(
        "--stripe",
        choices=("simulator", "real"),
        help="the Stripe simulator (default when no key is set) or the configured key",
    )
    dev.add_argument(
        "--shuffle-webhooks", action="store_true", help="the simulator delivers in random order"
    )
    dev.set_defaults(func=cmd_dev)
    simulate = sub.add_parser("simulate", help="scenarios on the dev Stripe simulator")
    scenarios = simulate.add_subparsers(dest="scenario", required=True)
    for name, text in SCENARIOS.items():
        command = scenarios.add_parser(name, help=text)
        command.add_argument("--customer", required=True, metavar="QUEUE_CUSTOMER_ID")
        command.set_defaults(func=cmd_simulate)
    dispute = scenarios.add_parser(
        "dispute", help="the customer's bank disputes its newest payment (--close: it ends)"
    )
    dispute.add_argument("--customer", required=True, metavar="QUEUE_CUSTOMER_ID")
    dispute.add_argument("--close", choices=("won", "lost"), help="close the open dispute")
    dispute.set_defaults(func=cmd_simulate)
    pause = scenarios.add_parser(
        "pause-collection", help="collection on the subscription pauses (--resume: resumes)"
    )
    pause.add_argument("--customer", required=True, metavar="QUEUE_CUSTOMER_ID")
    pause.add_argument("--resume", action="store_true", help="resume collection")
    pause.set_defaults(func=cmd_simulate)
    advance = scenarios.add_parser(
        "advance", help="move Stripe's clock: renewals, retries, trial ends, cancellations"
    )
    advance.add_argument("--days", type=float, required=True)
    advance.add_argument("--customer", metavar="QUEUE_CUSTOMER_ID", help="show its mirror row")
    advance.set_defaults(func=cmd_simulate)
