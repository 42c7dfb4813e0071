"""Customer service's housekeeping (a django-q2 schedule, run by qcluster)."""

from support.services import notifications_send


def notifications_mail() -> int:
    """Mail every notification not sent yet (the mail outbox)."""
    sent = total = 0
    while True:
        sent = notifications_send(limit=500)
        total += sent
        if sent < 500:
            return total
