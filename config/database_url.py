"""``DATABASE_URL`` read into Django's ``DATABASES["default"]``.

A ``postgres://`` or ``postgresql://`` URL is read by libpq's own parser (psycopg's
``conninfo_to_dict``), so it may name several hosts, as libpq does::

    postgres://u:pw@db1:5432,db2:5432/logistics?target_session_attrs=read-write&connect_timeout=2

Django's postgresql backend hands HOST and PORT to libpq as they are ("db1,db2", "5432,5432")
and every query parameter (OPTIONS) with them: each new connection tries the hosts in turn and
keeps the first that is writable, so after a failover a process finds the promoted standby by
itself. A host may be a socket folder, percent-encoded (scripts/ensure_postgres.sh prints one).
Other schemes (``sqlite://`` ...) are dj_database_url's.

This module is imported by config/settings.py before Django is set up: it imports nothing of
Django's but the exception.
"""

from __future__ import annotations

import re
from typing import Any, cast

from django.core.exceptions import ImproperlyConfigured

POSTGRES_SCHEMES = ("postgres://", "postgresql://")
# libpq's values for target_session_attrs (PostgreSQL 14 and later)
TARGET_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
# What libpq reads that is not an option for the connection (Django has fields of its own for them)
_FIELDS = {"dbname": "NAME", "user": "USER", "password": "PASSWORD", "host": "HOST", "port": "PORT"}
_PASSWORD = re.compile(r"(?<=//)([^:/@]*):([^@/]*)@")


def password_hidden(url: str) -> str:
    """``url`` with the password of its user part replaced by ``***`` (for a log or an error)."""
    return _PASSWORD.sub(r"\1:***@", url)


def database_settings(url: str, *, conn_max_age: int, conn_health_checks: bool, name: str = "DATABASE_URL",
                      ) -> dict[str, Any]:
    """Django's settings of one database from ``url``; ImproperlyConfigured naming ``name`` (the
    password hidden) for a URL that cannot work."""
    if url.startswith(POSTGRES_SCHEMES):
        return _postgres_settings(url, conn_max_age=conn_max_age, conn_health_checks=conn_health_checks,
                                  name=name)
    import dj_database_url

    try:
        return cast("dict[str, Any]", dj_database_url.parse(url, conn_max_age=conn_max_age,
                                                            conn_health_checks=conn_health_checks))
    except Exception as exc:  # dj_database_url raises several types for bad URLs
        raise ImproperlyConfigured(f"{name} is not a database URL: {_hidden(str(exc), url)}") from exc


def _postgres_settings(url: str, *, conn_max_age: int, conn_health_checks: bool, name: str) -> dict[str, Any]:
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    def refuse(reason: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"{name} must be a PostgreSQL URL as libpq reads it "
                                    f"(postgres://user:password@host:port,host:port/database?option=value); "
                                    f"{password_hidden(url)!r}: {_hidden(reason, url)}")

    try:
        params = {key: str(value) for key, value in conninfo_to_dict(url).items()}
    except ProgrammingError as exc:
        raise refuse(str(exc).strip()) from None
    hosts = params.get("host", "").split(",")
    ports = params.get("port", "").split(",")
    if not params.get("dbname"):
        raise refuse("it names no database")
    if not all(hosts):
        raise refuse("a host is missing")
    if len(ports) not in (1, len(hosts)):
        raise refuse(f"{len(hosts)} hosts but {len(ports)} ports (give one port for all, or one per host)")
    for port in ports:
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise refuse(f"port {port!r} is not a number from 1 to 65535")
    if not (params.get("connect_timeout") or "0").isdigit():
        raise refuse(f"connect_timeout {params['connect_timeout']!r} is not a whole number of seconds")
    if params.get("target_session_attrs", "any") not in TARGET_SESSION_ATTRS:
        raise refuse(f"target_session_attrs {params['target_session_attrs']!r} is not one of "
                     f"{', '.join(TARGET_SESSION_ATTRS)}")
    port = params.get("port", "")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": params["dbname"],
        "USER": params.get("user", ""),
        "PASSWORD": params.get("password", ""),
        "HOST": params.get("host", ""),
        "PORT": int(port) if port.isdigit() else port,  # several: "5432,5433", as libpq takes them
        "OPTIONS": {key: value for key, value in params.items() if key not in _FIELDS},
        "CONN_MAX_AGE": conn_max_age,
        "CONN_HEALTH_CHECKS": conn_health_checks,
        "DISABLE_SERVER_SIDE_CURSORS": False,
    }


def _hidden(text: str, url: str) -> str:
    """``text`` without the password of ``url`` (libpq quotes the part of the URL it stumbled on)."""
    match = _PASSWORD.search(url)
    if match and match.group(2):
        secret = match.group(2)
        text = re.sub(r'"[^"]*"', lambda quoted: '"***"' if secret in quoted.group(0) else quoted.group(0), text)
    return password_hidden(text)
