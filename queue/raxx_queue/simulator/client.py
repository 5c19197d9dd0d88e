"""`raxx-queue simulate`: run a scenario on the dev simulator, show what Queue made of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from raxx_queue.settings import ConfigError
from raxx_queue.simulator.dev import LocalPeers
from raxx_queue.simulator.raptor_sink import describe

TIMEOUT = httpx.Timeout(60.0, connect=2.0)


def run_scenario(
    data_dir: Path,
    raptor_token: str,
    name: str,
    *,
    queue_customer_id: str | None,
    days: float | None = None,
    close: str | None = None,
    resume: bool | None = None,
) -> list[str]:
    """The lines to print: what Stripe sent and Queue's outcome, then the mirror row."""
    peers = LocalPeers.load(data_dir)
    params: dict[str, Any] = {"queue_customer_id": queue_customer_id}
    if days is not None:
        params["days"] = days
    if close is not None:
        params["close"] = close
    if resume:
        params["resume"] = True
    with httpx.Client(timeout=TIMEOUT) as http:
        try:
            answer = http.post(f"{peers.stripe_url}/_simulator/scenarios/{name}", json=params)
        except httpx.HTTPError:
            raise ConfigError(
                f"the Stripe simulator at {peers.stripe_url} does not answer: is `make run` up?"
            ) from None
        body = answer.json()
        if answer.status_code != 200:
            return [f"Stripe refused: {body.get('error', {}).get('message', answer.text)}"]
        lines = [f"Stripe sent (its clock {body['clock_offset_days']:+g} days):"]
        lines += [_event_line(event) for event in body["events"]] or ["  nothing"]
        if queue_customer_id is not None:
            lines += _mirror_lines(http, peers.queue_url, raptor_token, queue_customer_id)
    return lines


def _event_line(event: dict[str, Any]) -> str:
    if event["delivered"]:
        result = f"Queue {event['status']} {event['outcome']}"
    else:
        result = f"not delivered (last answer {event['status']}, {event['attempts']} attempts)"
    return f"  {event['type']:<36} {event['id']}  -> {result}"


def _mirror_lines(http: httpx.Client, queue_url: str, token: str, customer: str) -> list[str]:
    response = http.post(
        f"{queue_url}/api/internal/billing/mirror-sync",
        json={"queue_customer_id": customer},
        headers={"Authorization": f"Bearer {token}"},
    )
    if response.status_code != 200:
        return [f"Queue has no mirror row for {customer} ({response.status_code})"]
    return ["Queue's mirror row (what Raptor's paywall sees):", f"  {describe(response.json())}"]
