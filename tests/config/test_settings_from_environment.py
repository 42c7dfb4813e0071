"""A setting from the environment that cannot work stops the process at start with a line that
names it (ImproperlyConfigured), instead of failing later on every request or message."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.config.test_ground_floor import checkout_copy, clean_environment, settings_import

AMQP = "RABBITMQ_URL must be amqp:// or amqps:// URLs with a host, separated by commas;"
PG = ("DATABASE_URL must be a PostgreSQL URL as libpq reads it "
      "(postgres://user:password@host:port,host:port/database?option=value);")
REDIS = "REDIS_URL must be a redis://host:port/db, rediss://... or unix:///path URL;"
BAD = [
    ("SIM_TIME_SCALE", "abc", "SIM_TIME_SCALE must be a number, got 'abc'"),
    ("SIM_TIME_SCALE", "-1", "SIM_TIME_SCALE must be a finite number >= 0.0, got '-1'"),
    ("SIM_TIME_SCALE", "nan", "SIM_TIME_SCALE must be a finite number >= 0.0, got 'nan'"),
    ("PAYMENT_PROVIDER_LATENCY", "slow", "PAYMENT_PROVIDER_LATENCY must be a number, got 'slow'"),
    ("PAYMENT_PROVIDER_LATENCY", "-2", "PAYMENT_PROVIDER_LATENCY must be a finite number >= 0.0, got '-2'"),
    ("PAYMENT_PROVIDER_CONCURRENCY", "0", "PAYMENT_PROVIDER_CONCURRENCY must be >= 1, got '0'"),
    ("SIM_ACTORS", "maybe", "SIM_ACTORS must be a boolean (1/0, true/false, yes/no, on/off), got 'maybe'"),
    ("CONSUMER_TRANSACTION_BATCH", "0", "CONSUMER_TRANSACTION_BATCH must be >= 1, got '0'"),
    ("CONSUMER_ACK_BATCH", "x", "CONSUMER_ACK_BATCH must be an integer, got 'x'"),
    ("API_MAX_BODY_BYTES", "1", "API_MAX_BODY_BYTES must be >= 1024, got '1'"),
    ("API_THROTTLE_USER", "abc",
     "API_THROTTLE_USER must be a rate such as 120/minute (N per second, minute, hour or day), got 'abc'"),
    ("API_THROTTLE_ORDERS", "5/fortnight",
     "API_THROTTLE_ORDERS must be a rate such as 120/minute (N per second, minute, hour or day), got '5/fortnight'"),
    ("API_THROTTLE_LOGIN", "-3/minute",
     "API_THROTTLE_LOGIN must be a rate such as 120/minute (N per second, minute, hour or day), got '-3/minute'"),
    ("SITE_URL", "shop.example", "SITE_URL must be an absolute http:// or https:// address, got 'shop.example'"),
    ("SITE_URL", "ftp://shop.example", "SITE_URL must be an absolute http:// or https:// address, got 'ftp://shop.example'"),
    ("SITE_URL", "https://", "SITE_URL must be an absolute http:// or https:// address, got 'https://'"),
    ("RABBITMQ_URL", "notaurl", f"{AMQP} 'notaurl' is not one"),
    ("RABBITMQ_URL", "http://rabbit", f"{AMQP} 'http://rabbit' is not one"),
    ("RABBITMQ_URL", "amqp://u:secret@rabbit:99999/%2F", f"{AMQP} 'amqp://u:***@rabbit:99999/%2F' is not one"),
    ("RABBITMQ_URL", "amqp://rabbit-1/v,amqp://", f"{AMQP} 'amqp://' is not one"),
    ("TUTORIAL_API", "1", "TUTORIAL_API must be one of shop, tracking (or unset), got '1'"),
    ("TIME_ZONE", "Mars/Olympus", "TIME_ZONE must be an IANA time zone such as Europe/Tallinn, got 'Mars/Olympus'"),
    ("DATABASE_URL", "postgres://u:s3cret@db1:5432,db2:x/logistics",
     f"{PG} 'postgres://u:***@db1:5432,db2:x/logistics': port 'x' is not a number from 1 to 65535"),
    ("DATABASE_URL", "postgres://u:s3cret@db1,db2/logistics?target_session_attr=read-write",
     f"{PG} 'postgres://u:***@db1,db2/logistics?target_session_attr=read-write': "
     'invalid URI query parameter: "target_session_attr"'),
    ("DATABASE_URL", "postgres://u:s3cret@db1,db2/logistics?target_session_attrs=writable",
     f"{PG} 'postgres://u:***@db1,db2/logistics?target_session_attrs=writable': target_session_attrs 'writable' "
     "is not one of any, read-write, read-only, primary, standby, prefer-standby"),
    ("DATABASE_URL", "postgres://u:s3cret@db1,db2/logistics?connect_timeout=soon",
     f"{PG} 'postgres://u:***@db1,db2/logistics?connect_timeout=soon': connect_timeout 'soon' is not a whole "
     "number of seconds"),
    ("DATABASE_URL", "postgres://u@/logistics?host=db1,db2&port=5432,5433,5434",
     f"{PG} 'postgres://u@/logistics?host=db1,db2&port=5432,5433,5434': 2 hosts but 3 ports "
     "(give one port for all, or one per host)"),
    ("DATABASE_URL", "postgres://u:s3cret@db1:5432,db2:5432",
     f"{PG} 'postgres://u:***@db1:5432,db2:5432': it names no database"),
    # libpq quotes the token it cannot read; the password is not shown there either
    ("DATABASE_URL", "postgres://u:s3%zzcret@db1,db2/logistics",
     f"{PG} 'postgres://u:***@db1,db2/logistics': invalid percent-encoded token: \"***\""),
    ("REDIS_URL", "redis-1:6379", f"{REDIS} 'redis-1:6379' is not one"),
    ("REDIS_URL", "http://redis-1", f"{REDIS} 'http://redis-1' is not one"),
    ("REDIS_URL", "redis://:s3cr/t@redis-1:99999/0", f"{REDIS} 'redis://:***@redis-1:99999/0' is not one"),
    ("REDIS_URL", "redis://app:pw@redis-1/x", f"{REDIS} 'redis://app:***@redis-1/x' is not one"),
    ("REDIS_URL", "redis://", f"{REDIS} 'redis://' is not one"),
]


@pytest.fixture
def checkout(tmp_path):
    root = checkout_copy(tmp_path)
    (root / ".secret_key").write_text("k" * 50)
    return root


def environment(**values: str) -> dict[str, str]:
    base = {k: v for k, v in clean_environment().items()
            if not k.startswith(("API_", "SITE_URL", "CONSUMER_", "SIM_", "DB_", "REDIS_"))}
    return {**base, **values}


@pytest.mark.parametrize(("name", "value", "message"), BAD)
def test_a_setting_that_cannot_work_stops_the_start_naming_it(checkout, name, value, message):
    result = settings_import(checkout, environment(**{name: value}))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"django.core.exceptions.ImproperlyConfigured: {message}"


def test_good_values_are_taken_as_given(checkout):
    script_env = environment(API_THROTTLE_USER="5/second", API_THROTTLE_ANON="0/day", API_THROTTLE_ORDERS="10/h",
                             API_THROTTLE_LOGIN="", SITE_URL="https://shop.example/", SIM_TIME_SCALE="0",
                             RABBITMQ_URL="amqp://u:p@rabbit-1:5672/v, amqps://u:p@rabbit-2/v",
                             REDIS_URL="rediss://:p@redis-1:6380/2")
    result = settings_import(checkout, script_env)
    assert result.returncode == 0, result.stderr
    shown = subprocess.run(
        [sys.executable, "-c",
         "import config.settings as s; print(s.API_THROTTLE_RATES, s.SITE_URL, s.RABBITMQ_URL, s.REDIS_URL)"],
        cwd=checkout, env={**script_env, "PYTHONPATH": str(checkout)}, capture_output=True, text=True, timeout=60)
    assert shown.stdout.strip() == ("{'user': '5/second', 'anon': '0/day', 'orders': '10/h', 'login': '20/minute'} "
                                    "https://shop.example amqp://u:p@rabbit-1:5672/v, amqps://u:p@rabbit-2/v "
                                    "rediss://:p@redis-1:6380/2")


def database_settings_shown(checkout, url: str) -> str:
    script_env = environment(DATABASE_URL=url)
    shown = subprocess.run(
        [sys.executable, "-c", "import config.settings as s; d = s.DATABASES['default']; "
                               "print(d['HOST'], d['PORT'], d['NAME'], d['USER'], d['PASSWORD'], "
                               "sorted(d['OPTIONS'].items()))"],
        cwd=checkout, env={**script_env, "PYTHONPATH": str(checkout)}, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.strip()


def test_several_database_hosts_go_to_libpq_as_they_are(checkout):
    # given: a primary and its standby in libpq's form, a password with an encoded character
    url = "postgres://app:p%40ss@db1:5432,db2:5433/logistics?target_session_attrs=read-write&connect_timeout=2"
    # when
    shown = database_settings_shown(checkout, url)
    # then: HOST and PORT as libpq takes several; the query's options with the backend's own
    assert shown == ("db1,db2 5432,5433 logistics app p@ss [('connect_timeout', '2'), ('prepare_threshold', 2), "
                     "('server_side_binding', True), ('target_session_attrs', 'read-write')]")


def test_a_socket_folder_is_a_database_host(checkout):
    # given: what scripts/ensure_postgres.sh prints for a cluster of the checkout's own
    url = "postgres://postgres@%2Fsrv%2Fapp%2F.pgdata%2Frun:55432/logistics"
    # when
    shown = database_settings_shown(checkout, url)
    # then
    assert shown == ("/srv/app/.pgdata/run 55432 logistics postgres  [('connect_timeout', 5), "
                     "('prepare_threshold', 2), ('server_side_binding', True)]")


def test_without_redis_url_there_is_no_redis(checkout):
    script_env = environment()
    shown = subprocess.run([sys.executable, "-c", "import config.settings as s; print(s.REDIS_URL)"], cwd=checkout,
                           env={**script_env, "PYTHONPATH": str(checkout)}, capture_output=True, text=True, timeout=60)
    assert shown.stdout.strip() == "None", shown.stderr
