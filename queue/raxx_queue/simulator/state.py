"""In-memory Stripe account of the double: stored objects, expansion, list pagination, errors."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from raxx_queue.simulator.events import build_event
from raxx_queue.simulator.fixtures import Json
from raxx_queue.simulator.objects import new_id
from raxx_queue.stripe_gateway import STRIPE_API_VERSION

# id prefix → the store holding that kind of object
_STORE_BY_PREFIX = {
    "cus_": "customers",
    "sub_": "subscriptions",
    "in_": "invoices",
    "pi_": "payment_intents",
    "ch_": "charges",
    "dp_": "disputes",
    "pm_": "payment_methods",
    "cs_": "checkout_sessions",
    "bps_": "portal_sessions",
    "evt_": "events",
}
_NOUN_BY_STORE = {
    "customers": "customer",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "payment_intents": "payment_intent",
    "charges": "charge",
    "disputes": "dispute",
    "payment_methods": "payment_method",
    "checkout_sessions": "checkout.session",
    "portal_sessions": "billing_portal.session",
    "events": "event",
}


class StripeApiError(Exception):
    """An error answer in Stripe's shape: `{"error": {type, code, message, param, ...}}`."""

    def __init__(self, status: int, type: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: Json = {"error": {"type": type, "message": message, **details}}


def resource_missing(noun: str, object_id: str, param: str = "id") -> StripeApiError:
    """404 (or 400 for a referenced id) `resource_missing`, as Stripe words it."""
    return StripeApiError(
        404 if param == "id" else 400,
        "invalid_request_error",
        f"No such {noun}: '{object_id}'",
        code="resource_missing",
        param=param,
        doc_url="https://stripe.com/docs/error-codes/resource-missing",
    )


_DECLINE_MESSAGES = {
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
}


def card_declined(decline_code: str) -> StripeApiError:
    """Stripe's 402 card_error for a declined card."""
    return StripeApiError(
        402,
        "card_error",
        _DECLINE_MESSAGES.get(decline_code, "Your card was declined."),
        code="card_declined",
        decline_code=decline_code,
        param="",
        doc_url="https://stripe.com/docs/error-codes/card-declined",
    )


def parameter_missing(param: str) -> StripeApiError:
    """400 `parameter_missing`."""
    return StripeApiError(
        400,
        "invalid_request_error",
        f"Missing required param: {param}.",
        code="parameter_missing",
        param=param,
    )


def invalid_param(param: str, message: str) -> StripeApiError:
    """400 `parameter_invalid_*`-style error."""
    return StripeApiError(
        400, "invalid_request_error", message, code="parameter_invalid", param=param
    )


@dataclass
class StripeState:
    """Objects of one fake Stripe account. Callers hold the double's lock around every use."""

    clock: Callable[[], float]
    rng: random.Random
    customers: dict[str, Json] = field(default_factory=dict)
    subscriptions: dict[str, Json] = field(default_factory=dict)
    invoices: dict[str, Json] = field(default_factory=dict)
    payment_intents: dict[str, Json] = field(default_factory=dict)
    charges: dict[str, Json] = field(default_factory=dict)
    disputes: dict[str, Json] = field(default_factory=dict)
    payment_methods: dict[str, Json] = field(default_factory=dict)
    checkout_sessions: dict[str, Json] = field(default_factory=dict)
    portal_sessions: dict[str, Json] = field(default_factory=dict)
    events: dict[str, Json] = field(default_factory=dict)
    undelivered_events: set[str] = field(default_factory=set)
    # v2 events (thin events' full form), by id; their ids share v1's `evt_` prefix
    v2_events: dict[str, Json] = field(default_factory=dict)
    # fields Stripe only returns when expanded (e.g. invoice.confirmation_secret), by object id
    includable: dict[str, Json] = field(default_factory=dict)
    # what a test card does when charged (pm id → "succeeds" / "fails")
    card_behaviour: dict[str, str] = field(default_factory=dict)
    # Stripe's webhooks: with `emitting` on (the simulator, not the test suite's double),
    # every state change is an event, kept for the Events API and handed to each listener
    emitting: bool = False
    listeners: list[Callable[[Json], None]] = field(default_factory=list)

    def now(self) -> int:
        """The account's current time (seconds)."""
        return int(self.clock())

    def emit(self, event_type: str, obj: Json, previous: Json | None = None) -> None:
        """Record that `obj` changed, as Stripe's event of `event_type`, when emitting.

        Events are stamped with the wall clock, not the account's (possibly advanced)
        clock: a receiver orders them by `created`, and they happen now.
        """
        if not self.emitting:
            return
        event = build_event(
            event_type,
            copy.deepcopy(obj),
            event_id=self.new_id("evt_"),
            created=int(time.time()),
            previous_attributes=previous,
            api_version=STRIPE_API_VERSION,
        )
        self.store(event)
        for listener in self.listeners:
            listener(event)

    def new_id(self, prefix: str, length: int = 24) -> str:
        """A fresh id; deterministic for a given seed."""
        return new_id(prefix, self.rng, length=length)

    def store(self, obj: Json) -> Json:
        """Put `obj` into the store its id prefix names and return it."""
        self._store_for(obj["id"])[obj["id"]] = obj
        return obj

    def get(self, object_id: str, param: str = "id") -> Json:
        """The stored object, or a `resource_missing` error."""
        found = self.find(object_id)
        if found is None:
            noun = _NOUN_BY_STORE.get(self._store_name(object_id) or "", "object")
            raise resource_missing(noun, object_id, param)
        return found

    def find(self, object_id: str) -> Json | None:
        """The stored object or None."""
        store_name = self._store_name(object_id)
        found: Json | None = getattr(self, store_name).get(object_id) if store_name else None
        return found

    def render(self, obj: Json, expand: list[str]) -> Json:
        """A deep copy of `obj` with each dotted `expand` path resolved."""
        rendered = copy.deepcopy(obj)
        for path in expand:
            self._expand(rendered, path.split("."))
        return rendered

    def _expand(self, node: Any, segments: list[str]) -> None:
        if not segments:
            return
        if isinstance(node, list):
            for element in node:
                self._expand(element, segments)
            return
        if not isinstance(node, dict):
            return
        head, rest = segments[0], segments[1:]
        if head not in node and head in self.includable.get(node.get("id", ""), {}):
            node[head] = copy.deepcopy(self.includable[node["id"]][head])
        value = node.get(head)
        if isinstance(value, str) and self.find(value) is not None:
            node[head] = value = self.render(self.get(value), [])
        self._expand(value, rest)

    def _store_name(self, object_id: str) -> str | None:
        return next(
            (name for prefix, name in _STORE_BY_PREFIX.items() if object_id.startswith(prefix)),
            None,
        )

    def _store_for(self, object_id: str) -> dict[str, Json]:
        name = self._store_name(object_id)
        if name is None:
            raise ValueError(f"no store for id {object_id!r}")
        store: dict[str, Json] = getattr(self, name)
        return store


@dataclass(frozen=True)
class Call:
    """One decoded API call: form body (POST) or query (GET/DELETE) and the ids in the path."""

    params: Json
    path_args: tuple[str, ...]

    @property
    def expand(self) -> list[str]:
        """The `expand[]` paths asked for."""
        value = self.params.get("expand", [])
        return [value] if isinstance(value, str) else list(value)

    def arg(self) -> str:
        """The (single) id in the path."""
        return self.path_args[0]


Handler = Callable[[StripeState, Call], Json]


def flag(value: Any) -> bool:
    return str(value).lower() == "true"


def merge_metadata(current: Json, update: Any) -> Json:
    """Stripe's metadata update: keys merge, an empty value deletes the key."""
    if update == "":
        return {}
    merged = {**current, **(update or {})}
    return {key: value for key, value in merged.items() if value != ""}


def live_customer(state: StripeState, customer_id: str, param: str) -> Json:
    customer = state.get(customer_id, param)
    if customer.get("deleted"):
        raise StripeApiError(
            400,
            "invalid_request_error",
            f"No such customer: '{customer_id}'",
            code="resource_missing",
            param=param,
        )
    return customer


def newest_first(objects: list[Json]) -> list[Json]:
    """Stripe's list order: newest `created` first, later insertions first on ties."""
    indexed = list(enumerate(objects))
    indexed.sort(key=lambda pair: (pair[1].get("created", 0), pair[0]), reverse=True)
    return [obj for _, obj in indexed]


def created_matches(created: int, bounds: Any) -> bool:
    """Whether `created` passes a `created=` / `created[gte]=` style filter."""
    if bounds is None:
        return True
    if not isinstance(bounds, dict):
        return created == int(bounds)
    checks = {
        "gt": lambda limit: created > limit,
        "gte": lambda limit: created >= limit,
        "lt": lambda limit: created < limit,
        "lte": lambda limit: created <= limit,
    }
    return all(checks[op](int(limit)) for op, limit in bounds.items() if op in checks)


def paginate(objects: list[Json], params: Json, url: str) -> Json:
    """A Stripe list object over `objects` (already in list order) honouring limit / cursors."""
    limit = int(params.get("limit", 10))
    if not 1 <= limit <= 100:
        raise invalid_param("limit", "This value must be between 1 and 100.")
    ids = [obj["id"] for obj in objects]
    if params.get("starting_after"):
        start = _cursor_index(ids, params["starting_after"], "starting_after") + 1
        page = objects[start : start + limit]
        has_more = start + limit < len(objects)
    elif params.get("ending_before"):
        end = _cursor_index(ids, params["ending_before"], "ending_before")
        page = objects[max(0, end - limit) : end]
        has_more = end - limit > 0
    else:
        page, has_more = objects[:limit], len(objects) > limit
    return {"object": "list", "data": page, "has_more": has_more, "url": url}


def _cursor_index(ids: list[str], cursor: str, param: str) -> int:
    if cursor not in ids:
        raise resource_missing("object", cursor, param)
    return ids.index(cursor)
