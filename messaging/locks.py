"""Every row lock messaging takes by hand, in primary-key order. (The relay's lease locks its rows
with ``FOR UPDATE SKIP LOCKED``: see ``messaging.lease``.)"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from messaging.models import DeadLetter


def dead_letters_for_update(ids: Iterable[int]) -> QuerySet[DeadLetter]:
    """The dead letters with these ids, locked. Caller holds the transaction."""
    return DeadLetter.objects.filter(pk__in=list(ids)).order_by("pk").select_for_update()
