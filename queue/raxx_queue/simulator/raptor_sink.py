"""A local Raptor for `raxx-queue dev`: takes the mirror pushes and prints each row.

It checks the bearer token as Raptor does and, given the signing secrets, each push's
Standard Webhooks signature with the reference library (`standardwebhooks`), keeps the
newest version of each customer's row, and prints one line per push, so the walk
through a customer's billing shows what Raptor's paywall would see.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY_BYTES = 64 * 1024


def describe(row: dict[str, Any]) -> str:
    """One line of a mirror row."""
    fields = (
        "plan_tier",
        "status",
        "entitled",
        "grace_until",
        "feature_locked_at",
        "access",
        "access_reason",
    )
    shown = " ".join(f"{name}={row.get(name)}" for name in fields if row.get(name) is not None)
    return f"{row.get('queue_customer_id')} v{row.get('version')}: {shown}"


class RaptorSink:
    """`with RaptorSink(token) as sink:` serves at `sink.url` until the block ends."""

    def __init__(
        self,
        token: str,
        print_line: Callable[[str], None] = print,
        signing_secrets: Sequence[str] = (),
    ) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self._token = token
        self._webhooks = [Webhook(secret) for secret in signing_secrets]
        self._print = print_line
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/billing/mirror"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RaptorSink:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def take(self, headers: dict[str, str], body: bytes) -> int:
        """The status answered to one push."""
        expected = f"Bearer {self._token}".encode()
        if not hmac.compare_digest(headers.get("authorization", "").encode(), expected):
            return 401
        if self._webhooks and not self._verified(headers, body):
            return 401
        try:
            row = json.loads(body)
            customer, version = row["queue_customer_id"], int(row["version"])
        except (ValueError, KeyError, TypeError):
            return 400
        with self._lock:
            held = self.rows.get(customer)
            if held is not None and int(held["version"]) >= version:
                return 200  # an older or repeated version: Raptor keeps what it has
            self.rows[customer] = row
        self._print(f"raptor  {describe(row)}")
        return 200

    def _verified(self, headers: dict[str, str], body: bytes) -> bool:
        """Any of the secrets verifies the push (Raptor's side of a rotation)."""
        for webhook in self._webhooks:
            try:
                webhook.verify(body, headers, json_parse=False)
            except WebhookVerificationError:
                continue
            return True
        return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length > MAX_BODY_BYTES:
                    self.send_response(413)
                    self.end_headers()
                    return
                body = self.rfile.read(length)
                headers = {key.lower(): value for key, value in self.headers.items()}
                self.send_response(sink.take(headers, body))
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the sink prints rows, not requests."""

        return Handler
