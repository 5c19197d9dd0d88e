"""How Queue's connections reach Postgres: directly, or through a transaction pooler.

Behind PgBouncer in transaction mode (Heroku's server-side connection pooling) each
transaction may run on a different server session, so nothing may outlive one:
no prepared-statement cache (asyncpg's named statements would be looked up on
another session), no parameters in the start-up packet (PgBouncer refuses the ones
it does not know) and no session `SET`: the idle-in-transaction cap is set per
transaction with `SET LOCAL` instead. Queue takes only transaction-scoped advisory
locks and never LISTENs, in either mode.
"""

from __future__ import annotations

from typing import Any

from raxx_queue.settings import PoolMode

IDLE_IN_TRANSACTION_SETTING = "idle_in_transaction_session_timeout"


def pool_options(mode: PoolMode, idle_in_transaction_ms: str) -> dict[str, Any]:
    """The asyncpg create_pool options for a mode."""
    if mode is PoolMode.TRANSACTION:
        # unnamed statements only: parsed, bound and run within one Sync, so within
        # the server session PgBouncer lent for it
        return {"statement_cache_size": 0}
    return {"server_settings": {IDLE_IN_TRANSACTION_SETTING: idle_in_transaction_ms}}


def connect_options(mode: PoolMode) -> dict[str, Any]:
    """The asyncpg connect options of a one-off connection (operator commands)."""
    return {"statement_cache_size": 0} if mode is PoolMode.TRANSACTION else {}


def transaction_preamble(mode: PoolMode, idle_in_transaction_ms: str) -> str | None:
    """What each explicit transaction runs first, or None: the session-level cap,
    scoped to the transaction where the session is not Queue's own."""
    if mode is PoolMode.TRANSACTION:
        return f"SET LOCAL {IDLE_IN_TRANSACTION_SETTING} = {int(idle_in_transaction_ms)}"
    return None
