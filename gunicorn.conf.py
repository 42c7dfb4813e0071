"""gunicorn's settings for the web process (the Procfile's ``web`` line).

WEB_PORT and WEB_WORKERS choose the port and the number of worker processes.
"""

import os

bind = f"127.0.0.1:{os.environ.get('WEB_PORT', '8000')}"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = 4
accesslog = None  # the app logs each request with the client's address (config/middleware.py)
loglevel = "warning"


def post_worker_init(worker) -> None:
    """Build, once per worker and before it takes a request, what Django and DRF otherwise build
    lazily on the first requests: concurrent first requests in a threaded worker raced on it
    (valid tokens answered 401 right after boot)."""
    from django.urls import get_resolver
    from knox.models import AuthToken  # noqa: F401 - the token authentication's lazy import

    from shop.api import OrderDetailOut, OrderIn, OrderOut

    get_resolver().url_patterns  # noqa: B018 - imports every app's urls.py and its views
    for serializer in (OrderIn(), OrderOut(), OrderDetailOut()):
        serializer.fields  # noqa: B018 - DRF builds serializer fields lazily
