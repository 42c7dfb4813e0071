"""The shop's housekeeping (a django-q2 schedule, run by qcluster)."""

from shop.idempotency import idempotent_requests_prune


def idempotency_keys_prune() -> int:
    """Forget the Idempotency-Keys older than their window (shop.idempotency.WINDOW)."""
    return idempotent_requests_prune()
