"""Scheduled shop steps (run by the qcluster workers)."""

from shop import services


def payment_timeout_check(order_id: str, request_number: str) -> None:
    """A payment clock scheduled as a task by an earlier version (now ``Order.payment_due_at``,
    enforced by ``services.payment_deadlines_enforce``); kept so such pending tasks still run."""
    services.order_payment_timeout(order_id=order_id, request_number=int(request_number))
