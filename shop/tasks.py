"""Scheduled shop steps (run by the qcluster workers)."""

from shop import services


def payment_timeout_check(order_id: str, request_number: str) -> None:
    services.order_payment_timeout(order_id=order_id, request_number=int(request_number))
