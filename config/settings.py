"""Settings: the environment is read here and nowhere else (see README "Settings").

Importing this module reads and checks; it writes nothing. The test suite's settings are
tests/settings.py.
"""

from __future__ import annotations

import ipaddress
import os
import re
import zoneinfo
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config.database_url import database_settings

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {raw!r}")


def _env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if value != value or value < minimum or value == float("inf"):
        raise ImproperlyConfigured(f"{name} must be a finite number >= {minimum}, got {raw!r}")
    return value


def _env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {raw!r}")
    return value


_RATE = re.compile(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)")


def _env_rate(name: str, default: str) -> str:
    """A throttle rate, "N/second|minute|hour|day" (DRF would fail on every request otherwise)."""
    raw = (os.environ.get(name) or "").strip() or default
    if not _RATE.fullmatch(raw):
        raise ImproperlyConfigured(f"{name} must be a rate such as 120/minute (N per second, minute, hour or day), "
                                   f"got {raw!r}")
    return raw


def _env_site_url(name: str, default: str) -> str:
    """An absolute http(s) address without a trailing slash."""
    raw = (os.environ.get(name) or "").strip() or default
    scheme, _, rest = raw.partition("://")
    if scheme not in ("http", "https") or not rest.split("/")[0] or any(c.isspace() for c in raw):
        raise ImproperlyConfigured(f"{name} must be an absolute http:// or https:// address, got {raw!r}")
    return raw.rstrip("/")


def _env_amqp_urls(name: str, default: str) -> str:
    """One AMQP URL, or several separated by commas (the nodes of one cluster)."""
    raw = (os.environ.get(name) or "").strip() or default
    for url in (part.strip() for part in raw.split(",")):
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises for a port that is not a number in range
        except ValueError:
            parts = None
        if url and (parts is None or parts.scheme not in ("amqp", "amqps") or not parts.hostname):
            shown = re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)  # not the password into a log
            raise ImproperlyConfigured(f"{name} must be amqp:// or amqps:// URLs with a host, separated by commas; "
                                       f"{shown!r} is not one")
    return raw


def _env_choice(name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``, or "" when unset."""
    raw = (os.environ.get(name) or "").strip()
    if raw and raw not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)} (or unset), got {raw!r}")
    return raw


def _redis_url_shown(url: str) -> str:
    """``url`` with its password replaced by ***, for messages (a password may hold / or @)."""
    scheme, sep, rest = url.rpartition("://")
    user, at, host = rest.rpartition("@")
    if not at:
        return url
    return f"{scheme}{sep}{user.partition(':')[0]}:***@{host}" if ":" in user else f"{scheme}{sep}***@{host}"


def _env_redis_url(name: str) -> str | None:
    """A Redis URL (redis://[[user]:password@]host[:port][/db], rediss://..., unix:///path), or None."""
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises for a port that is not a number in range
    except ValueError:
        parts = None
    db = parts.path.strip("/") if parts is not None else ""
    if parts is None or not (
            (parts.scheme in ("redis", "rediss") and parts.hostname and (db == "" or db.isdigit()))
            or (parts.scheme == "unix" and parts.path)):
        raise ImproperlyConfigured(f"{name} must be a redis://host:port/db, rediss://... or unix:///path URL; "
                                   f"{_redis_url_shown(raw)!r} is not one")
    return raw


def _env_list(name: str, default: str = "") -> list[str]:
    """A comma-separated list."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, else the key that ``make install`` (scripts/ensure_secret_key.sh) wrote
    once per checkout into the ignored file .secret_key."""
    key = os.environ.get("DJANGO_SECRET_KEY")
    if key:
        return key
    key_file = BASE_DIR / ".secret_key"
    try:
        key = key_file.read_text().strip()
    except FileNotFoundError:
        key = ""
    except OSError as exc:  # pragma: no cover - unreadable checkout
        raise ImproperlyConfigured(f"cannot read {key_file}: {exc}") from exc
    if not key:
        raise ImproperlyConfigured(
            f"no secret key: set DJANGO_SECRET_KEY, or run `make install` (it writes {key_file})")
    return key


SECRET_KEY = _secret_key()
DEBUG = _env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = _env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")

INSTALLED_APPS = [
    "config.admin_site.LogisticsAdminConfig",  # django.contrib.admin, actions on checked ids
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",  # API tokens, hashed, with an expiry (config/authentication.py)
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc as local static files: the docs work offline
    "django_filters",
    "django_q",
    "axes",
    "messaging",
    "shop",
    "payments",
    "warehouse",
    "transport",
    "support",
    "observability",
    "simulation",
    "course",
]

MIDDLEWARE = [
    "config.middleware.TraceMiddleware",
    "config.middleware.RequestIdMiddleware",
    "config.middleware.InputHygieneMiddleware",
    "config.middleware.RequestSizeLimitMiddleware",
    "config.middleware.LoginFormBudgetMiddleware",
    "config.middleware.PrivacyHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "config.middleware.ApiUtcMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # last: turns a login that django-axes refused into its 429 page
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
# The course's API (`make tutorial`, docs/tutorial.md): TUTORIAL_API=shop makes this process the
# course's e-shop (POST /orders, GET /orders/<id>), TUTORIAL_API=tracking its customer service
# (GET /tracking/<shipment_id>), instead of the site: a front without tokens on the same
# services (course/api.py). Off unless set; only Procfile.tutorial sets it.
TUTORIAL_API = _env_choice("TUTORIAL_API", ("shop", "tracking"))
if TUTORIAL_API:
    ROOT_URLCONF = f"course.urls_{TUTORIAL_API}"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------
# Several PostgreSQL hosts in libpq's form (a primary and its standbys, with
# target_session_attrs=read-write) are handed to libpq as they are: every new connection finds
# the writable one, and CONN_HEALTH_CHECKS drops a connection to a primary that went away.
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
_db = database_settings(DATABASE_URL, conn_max_age=_env_int("DB_CONN_MAX_AGE", 300), conn_health_checks=True)
# Web, relay, consumers and scheduler are separate processes on one file: WAL lets readers run
# beside the writer, IMMEDIATE takes the write lock at BEGIN (no lock upgrade deadlocks) and the
# timeout waits instead of failing.
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = dict(SQLITE_OPTIONS)
    _db["CONN_HEALTH_CHECKS"] = False
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _db.setdefault("OPTIONS", {})
    _db["OPTIONS"].setdefault("connect_timeout", 5)
    # Parameters bound by the server (not spliced into the SQL text by the client), and a
    # statement run a second time on a connection is prepared by psycopg: the statements
    # every message repeats are parsed and planned once per connection, not every time.
    if _env_bool("DB_PREPARED_STATEMENTS", True):
        _db["OPTIONS"].setdefault("server_side_binding", True)
        _db["OPTIONS"].setdefault("prepare_threshold", 2)
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- broker -----------------------------------------------------------------
RABBITMQ_URL = _env_amqp_urls("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
MESSAGING: dict[str, Any] = {
    "EXCHANGE": "logistics",
    "DEAD_LETTER_EXCHANGE": "logistics.dlx",
    # RabbitMQ's advice for quorum queues: a prefetch of 100 or more
    "PREFETCH": _env_int("CONSUMER_PREFETCH", 100, minimum=1),
    # handled (committed) messages acknowledged together with one basic.ack(multiple=True)
    "ACK_BATCH": _env_int("CONSUMER_ACK_BATCH", 10, minimum=1),
    # deliveries a worker already holds handled in one transaction (all or nothing; one on its
    # own after any failure)
    "TRANSACTION_BATCH": _env_int("CONSUMER_TRANSACTION_BATCH", 10, minimum=1),
    "RELAY_BATCH_SIZE": _env_int("RELAY_BATCH_SIZE", 5000, minimum=1),
    # unconfirmed messages in flight on the relay's channel
    "RELAY_WINDOW": _env_int("RELAY_WINDOW", 2000, minimum=1),
    # how often the relay looks for rows when it cannot LISTEN (SQLite), and when it can
    "RELAY_POLL_SECONDS": _env_float("RELAY_POLL_SECONDS", 0.2),
    "RELAY_LISTEN_FALLBACK_SECONDS": _env_float("RELAY_LISTEN_FALLBACK_SECONDS", 2.0),
    # Delays (seconds) before the 1st, 2nd, ... retry of a transiently failing message.
    "RETRY_DELAYS": (1, 5, 25),
    # Quorum queues dead-letter a message returned to them more often than this: the backstop for
    # a message that kills its worker before it can be parked. Every worker holding it that dies
    # (kill -9, a lost node) counts one, so it is well above what the fault tests inflict.
    "DELIVERY_LIMIT": _env_int("QUEUE_DELIVERY_LIMIT", 20, minimum=1),
}


def _fault_injection() -> dict[str, float]:
    raw = os.environ.get("FAULT_INJECTION", "").strip()
    points: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, _, prob = part.partition("=")
        try:
            value = float(prob)
        except ValueError:
            raise ImproperlyConfigured(f"FAULT_INJECTION: {part!r} is not name=probability") from None
        if not 0 <= value <= 1:
            raise ImproperlyConfigured(f"FAULT_INJECTION: probability of {name} must be in [0, 1]")
        points[name.strip()] = value
    return points


# Test-only crash points (messaging/faults.py); empty unless the fault tests set it.
FAULT_INJECTION = _fault_injection()

OUTBOX_RETENTION_DAYS = _env_float("OUTBOX_RETENTION_DAYS", 7.0, minimum=1.0)
# OpenTelemetry: every process makes spans (requests, handlers, the waits of each message) and
# passes the W3C trace context on in the messages; they are exported over OTLP/HTTP only when
# OTEL_EXPORTER_OTLP_ENDPOINT is set (say http://collector:4318). OTEL_TRACE_URL, with
# {trace_id} in it, makes the trace id on an order's journey page a link (Jaeger, Tempo, ...).
OTEL_EXPORTER_OTLP_ENDPOINT = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
OTEL_SERVICE_NAME = os.environ.get("OTEL_SERVICE_NAME", "").strip() or "logistics"
OTEL_TRACE_URL = os.environ.get("OTEL_TRACE_URL", "").strip()
if OTEL_EXPORTER_OTLP_ENDPOINT and not OTEL_EXPORTER_OTLP_ENDPOINT.startswith(("http://", "https://")):
    raise ImproperlyConfigured("OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL")
# Relays and queue workers write a heartbeat at most every WORKER_HEARTBEAT_SECONDS; one not
# heard from for WORKER_SILENT_SECONDS is shown as silent (dashboard, /metrics).
WORKER_HEARTBEAT_SECONDS = _env_float("WORKER_HEARTBEAT_SECONDS", 5.0, minimum=0.1)
WORKER_SILENT_SECONDS = _env_float("WORKER_SILENT_SECONDS", 30.0, minimum=1.0)
# The audit (manage.py audit, and its schedule every AUDIT_EVERY_MINUTES): messages published
# less than AUDIT_GRACE_SECONDS ago are not checked yet; an order that no step moved for
# AUDIT_ORDER_STALLED_MINUTES is listed as stalled.
AUDIT_GRACE_SECONDS = _env_float("AUDIT_GRACE_SECONDS", 60.0, minimum=0.0)
AUDIT_EVERY_MINUTES = _env_int("AUDIT_EVERY_MINUTES", 5, minimum=1)
AUDIT_ORDER_STALLED_MINUTES = _env_float("AUDIT_ORDER_STALLED_MINUTES", 60.0, minimum=1.0)

# --- simulation: the demo's world, off unless asked for --------------------------
# Simulated warehouse staff and drivers (simulation/actors.py) perform the real-world steps
# after these delays; in a real deployment people perform them (admin actions, the driver API).
# The Makefile's demo, run, tutorial and bench targets and `manage.py demo` ask for them;
# `manage.py check --deploy` warns while they are on (simulation/checks.py).
SIM_ACTORS = _env_bool("SIM_ACTORS", False)
# Multiplies the simulated delays only (the actors' and the simulated payment provider's),
# never a real timeout such as PAYMENT_TIMEOUT_SECONDS.
SIM_TIME_SCALE = _env_float("SIM_TIME_SCALE", 1.0, minimum=0.0)
SIM_PICKING_SECONDS = 2.0
SIM_STAGE_SECONDS = (1.0, 3.0)
SIM_PAYMENT_SECONDS = (0.5, 1.5)  # the simulated payment provider's latency

# --- payments -----------------------------------------------------------------
# The payment provider's adapter class, as a dotted path; "simulated" names the demo's
# (approves every charge but the test method card_declined). No default: a deployment that
# names none is refused at start by payments' system check (payments.E001), never handed a
# fake bank (docs/deployment.md).
SIMULATED_PAYMENT_PROVIDER = "payments.provider.SimulatedPaymentProvider"
PAYMENT_PROVIDER = (os.environ.get("PAYMENT_PROVIDER") or "").strip()
if PAYMENT_PROVIDER == "simulated":
    PAYMENT_PROVIDER = SIMULATED_PAYMENT_PROVIDER
# Seconds every call to the simulated provider takes (charge, refund, void), as a real one's
# HTTP call does; the worker asks for the payments it holds concurrently (docs/architecture.md).
PAYMENT_PROVIDER_LATENCY = _env_float("PAYMENT_PROVIDER_LATENCY", 0.0, minimum=0.0)
# How many provider calls one worker has in flight at once (its batch is the other bound).
PAYMENT_PROVIDER_CONCURRENCY = _env_int("PAYMENT_PROVIDER_CONCURRENCY", 32, minimum=1)
# The simulated provider's own store of idempotency keys and answers (not the app's database:
# it stands for the provider's side, and survives a worker's restart).
PAYMENT_PROVIDER_STORE = Path(os.environ.get("PAYMENT_PROVIDER_STORE", BASE_DIR / ".run" / "payment_provider.sqlite3"))
# The shop waits this long (real seconds) for an answer to a payment request, asks again,
# and after PAYMENT_MAX_REQUESTS requests fails the order with compensation.
PAYMENT_TIMEOUT_SECONDS = _env_float("PAYMENT_TIMEOUT_SECONDS", 30.0)
PAYMENT_MAX_REQUESTS = _env_int("PAYMENT_MAX_REQUESTS", 3, minimum=1)

# --- the catalogue -------------------------------------------------------------
# The shop's catalogue (GET /api/products/) shows availability, which is the warehouse's: the
# module that answers stock_on_hand(skus=) and skus_in_stock() (shop/catalogue.py). Named here,
# where the apps are put together, so that the shop imports no other app.
CATALOGUE_STOCK_SELECTORS = "warehouse.selectors"

# django-q2 runs the periodic housekeeping (pruning, the mail outbox) as its schedules,
# with its stock ``qcluster``. Timed steps of the flow are timers (messaging/timers.py).
Q_CLUSTER = {
    "name": "logistics",
    "orm": "default",
    "workers": _env_int("Q_WORKERS", 1, minimum=1),
    "timeout": 60,
    "retry": 120,
    "max_attempts": 5,
    "poll": 1,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 1000,
    "log_level": "WARNING",
}

# --- API ----------------------------------------------------------------------
# API tokens (django-rest-knox): only a SHA-512 hash is stored; a token works for
# API_TOKEN_TTL_DAYS after it was issued, then the customer signs in (or rotates) again.
API_TOKEN_TTL_DAYS = _env_float("API_TOKEN_TTL_DAYS", 30.0, minimum=0.01)
REST_KNOX = {"TOKEN_TTL": timedelta(days=API_TOKEN_TTL_DAYS), "AUTH_HEADER_PREFIX": "Token", "AUTO_REFRESH": False}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.PageNumbers",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api_errors.exception_handler",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PARSER_CLASSES": ["config.parsers.BoundedJSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["config.throttling.UserThrottle", "config.throttling.AnonThrottle"],
}
# Rates per user (anonymous: per client address). "N/second|minute|hour|day".
API_THROTTLE_RATES = {
    "user": _env_rate("API_THROTTLE_USER", "1200/minute"),
    "anon": _env_rate("API_THROTTLE_ANON", "300/minute"),
    "orders": _env_rate("API_THROTTLE_ORDERS", "120/minute"),
    # POST /api/auth/token/ per client address, whatever the account (django-axes counts failures)
    "login": _env_rate("API_THROTTLE_LOGIN", "20/minute"),
}
API_MAX_BODY_BYTES = _env_int("API_MAX_BODY_BYTES", 64 * 1024, minimum=1024)
# The deepest nesting and the most values (keys and items, in all) a JSON body may hold.
API_JSON_MAX_DEPTH = _env_int("API_JSON_MAX_DEPTH", 20, minimum=4)
API_JSON_MAX_VALUES = _env_int("API_JSON_MAX_VALUES", 5000, minimum=100)
SPECTACULAR_SETTINGS = {
    "TITLE": "Logistics integration platform API",
    "DESCRIPTION": (
        "Place orders and follow them: the e-shop's orders, the catalogue, public shipment tracking, and "
        "for staff the stock and payments.\n\n"
        "**An order is answered at once and moves on by itself.** `POST /api/orders/` answers `201` with "
        "`status: \"new\"`; the warehouse, payments and transport then carry it forward through messages, "
        "seconds to days later. Follow it with `GET /api/orders/{order_id}/`, or with the public "
        "`GET /api/tracking/{shipment_id}/` once it has a shipment.\n\n"
        "Authenticate with `Authorization: Token <token>` (`POST /api/auth/token/` gives it). Every path "
        "also answers under `/api/v1/` (this version), listed here once. Errors are JSON: `400` names "
        "each bad field."),
    "PREPROCESSING_HOOKS": ["config.openapi.one_copy_of_each_endpoint"],
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ShippingMethodEnum": "contracts.methods.SHIPPING_METHOD_CHOICES",
        "PaymentMethodEnum": "contracts.methods.PAYMENT_METHOD_CHOICES",
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024

# Every request budget above is counted where all web nodes see it (config/throttling.py):
# with REDIS_URL, in that Redis (one atomic script per request; every node shares it); without
# it, in files on this machine, shared by its web processes (API_THROTTLE_DIR). Keys start
# with API_THROTTLE_REDIS_PREFIX (several deployments may share one Redis).
REDIS_URL = _env_redis_url("REDIS_URL")
API_THROTTLE_REDIS_PREFIX = "logistics:limits"
# Redis that does not answer within this many seconds is taken to be down: requests go on
# unlimited (counted in /metrics) and it is tried again REDIS_RETRY_SECONDS later.
REDIS_TIMEOUT_SECONDS = _env_float("REDIS_TIMEOUT_SECONDS", 0.25, minimum=0.01)
REDIS_RETRY_SECONDS = _env_float("REDIS_RETRY_SECONDS", 5.0, minimum=0.0)
# Called with scope=... for each request let through unchecked (/metrics counts them).
REQUEST_LIMITS_UNCHECKED_CALLABLE = "observability.metrics.request_limits_unchecked"

# Shared by every web worker process.
CACHE_DIR = os.environ.get("DJANGO_CACHE_DIR") or str(BASE_DIR / ".run" / "cache")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": CACHE_DIR}}
# The throttles' request histories without REDIS_URL (config/throttling.py), shared by every
# web worker process and thread of this machine.
API_THROTTLE_DIR = str(Path(CACHE_DIR) / "throttle")
# At most this many histories are kept (the least recently used go first): a bound on the
# folder whatever clients send.
API_THROTTLE_MAX_HISTORIES = _env_int("API_THROTTLE_MAX_HISTORIES", 100_000, minimum=100)

# --- mail ---------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# A mail server that does not answer is given up on after this many seconds (the mail is tried
# again later): the worker that mails right after a commit is never held for long.
EMAIL_TIMEOUT = _env_float("EMAIL_TIMEOUT", 10.0, minimum=1.0)
# Whom the customer deals with: in every customer mail (sender, signature) and on the tracking page.
SHOP_NAME = os.environ.get("SHOP_NAME", "Logistics Shop")
SHOP_CONTACT_EMAIL = os.environ.get("SHOP_CONTACT_EMAIL", "help@logistics.example")
SHOP_CONTACT_PHONE = os.environ.get("SHOP_CONTACT_PHONE", "")
# The carrier that delivers the shop's parcels (the tracking page and the shipping mail name it).
SHOP_CARRIER = os.environ.get("SHOP_CARRIER", f"{SHOP_NAME} courier")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", f'"{SHOP_NAME}" <{SHOP_CONTACT_EMAIL}>')
# The public address of the site, for links that leave it (the tracking link in mails).
SITE_URL = _env_site_url("SITE_URL", "http://127.0.0.1:8000")
# Days from the parcel leaving the warehouse to its delivery, at the earliest and the latest,
# per shipping method: the expected delivery window in the shipping mail and on the tracking page.
DELIVERY_DAYS = {"standard": (2, 4), "express": (1, 2)}
# The language of a customer's mails: the shipping country's, where it is listed here (names and
# ISO codes, any case), else the language the order was placed in, else this default.
CUSTOMER_LANGUAGE_BY_COUNTRY = {"EE": "et", "EST": "et", "ESTONIA": "et", "EESTI": "et"}
CUSTOMER_LANGUAGE_DEFAULT = os.environ.get("CUSTOMER_LANGUAGE_DEFAULT", "en")

# --- misc ---------------------------------------------------------------------
# Pages follow the browser's Accept-Language (LocaleMiddleware) among these; the message files
# are locale/<lang>/LC_MESSAGES/django.po, compiled to .mo by `make install`.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("et", "Eesti")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# times to the second, with their zone (config/formats/)
FORMAT_MODULE_PATH = ["config.formats"]
USE_I18N = True
# Pages, mails and the admin show times in the shop's zone; the database and JSON keep UTC.
TIME_ZONE = (os.environ.get("TIME_ZONE") or "").strip() or "Europe/Tallinn"
try:
    zoneinfo.ZoneInfo(TIME_ZONE)
except (ValueError, zoneinfo.ZoneInfoNotFoundError):
    raise ImproperlyConfigured(
        f"TIME_ZONE must be an IANA time zone such as Europe/Tallinn, got {TIME_ZONE!r}") from None
USE_TZ = True
# Requests under these paths are answered in UTC (config.middleware.ApiUtcMiddleware); every
# path of the course's API (TUTORIAL_API) is an endpoint.
API_UTC_PATH_PREFIXES = ("/",) if TUTORIAL_API else ("/api/",)
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves the admin's and Swagger UI's static files from any server, DEBUG or not,
# straight from the apps (no collectstatic step for the demo). STATIC_ROOT, collectstatic's
# target, must exist all the same (WhiteNoise warns): `make install` makes it.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = False
LOGIN_URL = "/admin/login/"

# --- sign-in ----------------------------------------------------------------------
# Password logins (the admin's, the browsable API's and POST /api/auth/token/) go through
# django-axes: after LOGIN_FAILURE_LIMIT failures for one account, or from one client address
# (config/client_address.py), that account or address is refused for LOGIN_COOLOFF_MINUTES.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = _env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=_env_float("LOGIN_COOLOFF_MINUTES", 15.0, minimum=0.1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "config.client_address.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
# A success clears the failures of the account that logged in, never the address's others
# (accounts.lockout.AccountOnlyResetHandler; axes' own handler cleared the whole address).
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "accounts.lockout.AccountOnlyResetHandler"
AXES_DISABLE_ACCESS_LOG = True  # the access log (config/middleware.py) has every request already
AXES_VERBOSE = False
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- security -------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
# Secure cookies by default (browsers treat http://localhost as secure, so the demo works).
SESSION_COOKIE_SECURE = _env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_TRUSTED_ORIGINS = _env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# TLS is the reverse proxy's: these turn on HTTPS redirects and HSTS when it is there.
SECURE_SSL_REDIRECT = _env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = _env_int("DJANGO_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = _env_bool("DJANGO_HSTS_PRELOAD", False)
if _env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def _env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for item in _env_list(name):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP address or network") from None
    return networks


# The proxies whose X-Forwarded-For is believed (addresses or networks, comma-separated; e.g.
# 127.0.0.1 for an nginx on this machine). None by default: the client is the peer, and
# forwarding headers change nothing (config/client_address.py).
TRUSTED_PROXIES = _env_networks("DJANGO_TRUSTED_PROXIES")

# Every HTML page: scripts only from this site or inline with the response's nonce
# (``request.csp_nonce``), nothing from elsewhere, no framing. Styles may be inline: Swagger UI
# and ReDoc set them as they render, and a style cannot run code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "worker-src": [SELF, "blob:"],  # ReDoc's search runs in a worker it makes from a blob
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# Browser features no page here uses, turned off (config/middleware.py sends it).
PERMISSIONS_POLICY = ("accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
                      "microphone=(), payment=(), usb=()")

# --- observability (README "Seeing the flow") ---------------------------------------------
# The queue workers' and web workers' metric files (prometheus_client's multiprocess mode; see
# messaging/metrics.py, which hands this folder to prometheus_client and makes it as every
# process starts: MessagingConfig.ready).
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(BASE_DIR / ".run" / "prometheus")
# /metrics: a scraper with "Authorization: Bearer <METRICS_TOKEN>", staff, or (unless behind a
# TLS proxy) a client whose address (config/client_address.py) is loopback.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOW_LOOPBACK = _env_bool("METRICS_ALLOW_LOOPBACK", not _env_bool("DJANGO_BEHIND_TLS_PROXY", False))
DASHBOARD_POLL_SECONDS = _env_float("DASHBOARD_POLL_SECONDS", 2.0, minimum=0.5)
# Probes and scrapers speak plain HTTP to the process, not through the TLS proxy.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "pika": {"level": "WARNING"},
        "django_q": {"level": "WARNING"},
    },
}
