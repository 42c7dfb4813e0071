"""gunicorn's settings for the course's API (Procfile.tutorial's lines; docs/tutorial.md).

TUTORIAL_API chooses the part of the course's API the process serves (config/settings.py
routes it to course/urls_<part>.py) and so its port: ``shop`` on TUTORIAL_SHOP_PORT (5001),
``tracking`` on TUTORIAL_TRACKING_PORT (5002), both on TUTORIAL_HOST (127.0.0.1: loopback
unless configured; another address must be in DJANGO_ALLOWED_HOSTS too).
"""

import os

PARTS = {
    "shop": ("TUTORIAL_SHOP_PORT", "5001", "the course's e-shop (POST /orders, GET /orders/<id>)",
             "without sign-in: its orders belong to the guest customer course-guest"),
    "tracking": ("TUTORIAL_TRACKING_PORT", "5002", "the course's customer service (GET /tracking/<shipment_id>)",
                 "without sign-in: anyone holding a shipment id"),
}
part = os.environ.get("TUTORIAL_API", "")
if part not in PARTS:
    raise SystemExit(f"course/gunicorn.conf.py serves the course's API: TUTORIAL_API must be shop or tracking, "
                     f"got {part!r}")
port_variable, default_port, serves, who = PARTS[part]
address = f"{os.environ.get('TUTORIAL_HOST', '127.0.0.1')}:{os.environ.get(port_variable, default_port)}"

bind = address
workers = 1
threads = 4
accesslog = None  # the app logs each request (config/middleware.py)
loglevel = "info"


def when_ready(server) -> None:
    server.log.info("tutorial mode: %s on http://%s, %s (docs/tutorial.md)", serves, address, who)


def post_worker_init(worker) -> None:
    """Build the URLconf and the views before the first request (as gunicorn.conf.py does)."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports the URLconf and its views
