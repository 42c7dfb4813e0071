"""Errors a user or a message can cause. The API maps them to 4xx; consumers park them."""

from __future__ import annotations


class DomainError(Exception):
    """A request or message the domain refuses. ``field`` names the offending input."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code

    def as_dict(self) -> dict:
        if self.field:
            return {self.field: [self.message]}
        return {"detail": self.message}


class NotFound(DomainError):
    status_code = 404

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field, code="not_found")


class Forbidden(DomainError):
    """The user may see the object but lacks the permission for what they asked."""

    status_code = 403

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field, code="permission_denied")


class Conflict(DomainError):
    status_code = 409

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field, code="conflict")


class Unprocessable(DomainError):
    """Well-formed, but contradicts what the server holds (an idempotency key reused for another body)."""

    status_code = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field, code="unprocessable")


class TooManyAttempts(DomainError):
    """Refused for a while (too many failed logins); ``retry_after`` in seconds."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, code="too_many_attempts")
        self.retry_after = retry_after
