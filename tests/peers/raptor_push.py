"""A push as the test Raptor received it, and the faults it can be told to answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(eq=False)
class Push:
    """One request as Raptor received it; `status` is None while the request is held."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, None if empty or not JSON
    raw: bytes
    received_at: float  # time.monotonic()
    authorized: bool
    status: int | None = None
    verified_by: str | None = None  # which accepted secret (or key) verified it
    answered_at: float | None = None

    @property
    def held(self) -> bool:
        """Not answered yet: held by `hang()`, or being answered right now."""
        return self.status is None

    @property
    def accepted(self) -> bool:
        """Answered 2xx."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def rejected(self) -> bool:
        """Answered 401 for a missing or wrong token."""
        return self.status == 401

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Mirror rows carried: a single row, a list of rows, or `{"rows": [...]}`."""
        body = self.body
        if isinstance(body, dict) and isinstance(body.get("rows"), list):
            body = body["rows"]
        candidates = body if isinstance(body, list) else [body]
        return [row for row in candidates if isinstance(row, dict) and "queue_customer_id" in row]


@dataclass
class _Fault:
    kind: str  # "fail" or "hang"
    status: int
    remaining: int | None  # None: until recover()
    retry_after: str | None = None
