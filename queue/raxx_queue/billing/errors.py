"""Domain errors of the billing flows (subscribe, Checkout, Portal, customers, reconcile)."""

from __future__ import annotations

from raxx_queue.errors import ServiceError


class SubscriptionAlreadyActive(ServiceError):
    status = 409
    code = "SUBSCRIPTION_ALREADY_ACTIVE"

    def __init__(self, subscription_id: str) -> None:
        super().__init__(
            f"the customer already has an active, trialing or past-due subscription "
            f"({subscription_id}); change it through the Customer Portal"
        )


class CustomerLinkConflict(ServiceError):
    status = 409
    code = "CUSTOMER_LINK_CONFLICT"

    def __init__(self) -> None:
        super().__init__(
            "the queue customer and the Stripe customer are linked to other customers; "
            "an operator must reconcile them"
        )


class ReconcileRunning(ServiceError):
    status = 409
    code = "RECONCILE_RUNNING"

    def __init__(self) -> None:
        super().__init__(
            "a reconcile of all customers is running (the CLI's or another call's); "
            "call again once it has ended: runs resume where the last one stopped"
        )


class NoStripeCustomer(ServiceError):
    status = 409
    code = "NO_STRIPE_CUSTOMER"

    def __init__(self) -> None:
        super().__init__("this customer has no Stripe customer to reconcile")


class CustomerRelinking(ServiceError):
    status = 409
    code = "CUSTOMER_RELINKING"

    def __init__(self) -> None:
        super().__init__(
            "the customer was linked to another Stripe customer during the erasure; try again"
        )
