"""The id of the HTTP request being served, for what that request causes."""

import contextvars

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_request_id", default=None)
