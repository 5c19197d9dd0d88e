"""Settings production refuses at start-up: each would send a secret in clear, to the
wrong host, or let one caller pass for another (docs/security.md, finding 9).

Each problem names its variable, never its value. A loopback address is accepted where
the rule is about the network: traffic to it never leaves the machine (a PgBouncer
beside the process, a local peer in the deployment tests).
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from pydantic import SecretStr

if TYPE_CHECKING:
    from raxx_queue.settings import Settings

PLACEHOLDERS = frozenset({"changeme", "change-me", "changethis", "placeholder", "xxx", "todo"})
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")

# Stripe's endpoint secrets are `whsec_` and 32 characters; anything shorter was typed
# by hand or cut short, and is weak against an offline guess of a signed body.
MIN_WEBHOOK_SECRET_LENGTH = 32

# libpq modes that may fall back to a clear connection
CLEAR_SSLMODES = frozenset({"disable", "allow", "prefer"})

STRIPE_API_HOST = "api.stripe.com"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _database_problem(url: str) -> str | None:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if query.get("sslmode", "require").lower() not in CLEAR_SSLMODES:
        return None
    if is_loopback(parts.hostname) or query.get("host", "").startswith("/"):
        return None
    return "DATABASE_URL: sslmode must not allow a clear connection in production"


def production_problems(settings: Settings) -> list[str]:
    """What production refuses in these settings, one line per variable."""
    problems: list[str] = []
    if settings.database_url is not None:
        problem = _database_problem(settings.database_url.get_secret_value())
        if problem:
            problems.append(problem)
    mirror = settings.raptor_mirror_url
    if mirror is not None and mirror.scheme != "https" and not is_loopback(mirror.host):
        problems.append("RAPTOR_MIRROR_URL: must be https:// in production")
    base = settings.stripe_api_base
    stripes_own = base is not None and base.scheme == "https" and base.host == STRIPE_API_HOST
    if base is not None and not is_loopback(base.host) and not stripes_own:
        problems.append("STRIPE_API_BASE: no override of Stripe's address in production")
    for name in ("STRIPE_WEBHOOK_SECRET", "STRIPE_THIN_WEBHOOK_SECRET"):
        secrets = getattr(settings, name.lower())
        if any(len(secret.get_secret_value()) < MIN_WEBHOOK_SECRET_LENGTH for secret in secrets):
            problems.append(
                f"{name}: each secret must have at least {MIN_WEBHOOK_SECRET_LENGTH} characters"
            )
    return problems


def shared_tokens(tokens: dict[str, list[str]]) -> list[str]:
    """Variables whose tokens another caller also holds: a token names one caller."""
    owners: dict[str, set[str]] = {}
    for variable, values in tokens.items():
        for value in values:
            owners.setdefault(value, set()).add(variable)
    held = {name for names in owners.values() if len(names) > 1 for name in names}
    shared = [name for name in tokens if name in held]
    return [f"{', '.join(shared)}: a token must belong to one caller"] if shared else []


def check_real_secret(value: SecretStr) -> None:
    """ValueError for a placeholder or a secret under 16 characters (any environment)."""
    raw = value.get_secret_value()
    if raw.lower() in PLACEHOLDERS or len(raw) < 16:
        raise ValueError("must be a real secret of at least 16 characters")
