"""The connection budget: what one web dyno opens, against the plan's connection limit.

A web dyno opens up to WEB_CONCURRENCY x DATABASE_POOL_SIZE connections; the release
phase (sqitch) and one-off dynos (operator commands, psql) need theirs beside it:
DATABASE_CONNECTION_RESERVE keeps them free. Behind a transaction pooler the web
dynos' connections are PgBouncer's clients, and the plan's limit binds PgBouncer's
own server pool instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from raxx_queue.settings import PoolMode, Settings

log = structlog.get_logger(__name__)

# sqitch in the release phase: its registry connection (DBD::Pg) and psql running a change
RELEASE_CONNECTIONS = 2
# an operator command on a one-off dyno (reconcile, events replay)
ONE_OFF_POOL_SIZE = 4
# Settings' default reserve: one release and one operator command at a time
DEFAULT_RESERVE = RELEASE_CONNECTIONS + ONE_OFF_POOL_SIZE


@dataclass(frozen=True)
class ConnectionBudget:
    workers: int
    pool_size: int
    reserve: int
    limit: int | None
    mode: PoolMode

    @property
    def per_dyno(self) -> int:
        """The most connections one web dyno opens."""
        return self.workers * self.pool_size

    @property
    def needed(self) -> int:
        return self.per_dyno + self.reserve

    @property
    def binds(self) -> bool:
        """Whether the plan's limit counts Queue's own connections (no transaction pooler)."""
        return self.limit is not None and self.mode is PoolMode.SESSION

    @property
    def exceeded(self) -> bool:
        return self.binds and self.limit is not None and self.needed > self.limit

    def web_dynos_that_fit(self) -> int | None:
        if not self.binds or self.limit is None:
            return None
        return max(0, (self.limit - self.reserve) // self.per_dyno)

    def describe(self) -> str:
        used = (
            f"{self.workers} workers x {self.pool_size} connections = {self.per_dyno}"
            f" per web dyno, + {self.reserve} reserved for release and one-off dynos"
            f" = {self.needed}"
        )
        if self.limit is None:
            return f"{used}; DATABASE_CONNECTION_LIMIT not set, nothing to check against"
        if not self.binds:
            return (
                f"{used}; behind a transaction pooler these are PgBouncer's clients: the"
                f" plan's limit of {self.limit} binds PgBouncer's server pool, not them"
            )
        fit = self.web_dynos_that_fit()
        verdict = "exceeds" if self.exceeded else "fits"
        return f"{used}; {verdict} the limit of {self.limit} ({fit} web dyno(s) fit)"


def connection_budget(settings: Settings, workers: int) -> ConnectionBudget:
    return ConnectionBudget(
        workers=max(1, workers),
        pool_size=settings.database_pool_size,
        reserve=settings.database_connection_reserve,
        limit=settings.database_connection_limit,
        mode=settings.database_pool_mode,
    )


def warn_if_over_budget(settings: Settings, workers: int) -> ConnectionBudget:
    """At start-up: one warning when the dyno alone would exceed the plan's limit."""
    budget = connection_budget(settings, workers)
    if budget.exceeded:
        log.warning(
            "database_connection_budget_exceeded",
            workers=budget.workers,
            pool_size=budget.pool_size,
            reserve=budget.reserve,
            needed=budget.needed,
            limit=budget.limit,
            advice="lower WEB_CONCURRENCY or DATABASE_POOL_SIZE, or use connection pooling",
        )
    return budget
