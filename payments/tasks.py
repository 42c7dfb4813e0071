"""Scheduled payment steps (run by the qcluster workers)."""

from payments import services


def payment_charge(payment_id: str) -> None:
    services.payment_charge(payment_id=payment_id)
