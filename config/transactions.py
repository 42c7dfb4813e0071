"""The transaction a service owns, or joins inside a message handler's.

Every service runs in a transaction (``@service_transaction``). On its own -- an API view,
a scheduled step -- that is its own transaction; nested in someone else's it is a
savepoint, so a caller that handles the service's error (DRF turning a DomainError into a
400, say) can carry on.

A queue worker handles each message in ONE transaction (``joined_transaction``) together
with the record that the message was processed, and never carries on after an error: the
whole transaction rolls back and the message is retried or parked. Services called in
there join that transaction without a savepoint of their own, which saves two round trips
per service call on every message.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.db import transaction

F = TypeVar("F", bound=Callable)

_joined: contextvars.ContextVar[bool] = contextvars.ContextVar("joined_transaction", default=False)


def service_transaction(func: F) -> F:
    """``@transaction.atomic`` for services: no savepoint inside a ``joined_transaction``."""

    @functools.wraps(func)
    def run(*args, **kwargs):
        with transaction.atomic(savepoint=not _joined.get()):
            return func(*args, **kwargs)

    return run  # type: ignore[return-value]


@contextmanager
def joined_transaction() -> Iterator[None]:
    """A transaction that the services called inside join; any error rolls all of it back."""
    with transaction.atomic():
        token = _joined.set(True)
        try:
            yield
        finally:
            _joined.reset(token)
