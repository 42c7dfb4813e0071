#!/usr/bin/env bash
# Print a DATABASE_URL of a PostgreSQL server that answers: DATABASE_URL itself when it is a
# postgres:// URL that answers, otherwise a cluster of the project's own in .pgdata/ (ignored
# by git), created and started here. Progress goes to stderr; the URL is the only stdout.
# PG_PORT and PG_DATA choose the port and the folder of that cluster (the fault tests start one
# of their own to restart and kill).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PY:-.venv/bin/python}
PG_PORT=${PG_PORT:-55432}
PG_BIN=${PG_BIN:-}
if [ -z "$PG_BIN" ]; then
  for v in 17 16 15 14 13; do
    if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then PG_BIN="/usr/lib/postgresql/$v/bin"; break; fi
  done
fi

answers() {
  "$PY" - "$1" <<'PY' >/dev/null 2>&1
import sys, psycopg
# libpq reads the URL (several hosts too); its database may not exist yet
psycopg.connect(sys.argv[1], dbname="postgres", connect_timeout=3).close()
PY
}

case "${DATABASE_URL:-}" in
  postgres://*|postgresql://*)
    if answers "$DATABASE_URL"; then
      echo "PostgreSQL: using DATABASE_URL" >&2
      echo "$DATABASE_URL"
      exit 0
    fi
    echo "PostgreSQL: DATABASE_URL does not answer; starting a local cluster instead" >&2
    ;;
esac

# Where the project's own cluster lives. PostgreSQL refuses to run as root, so as root it runs
# as the postgres user; a checkout that user cannot reach (e.g. under /root) keeps the
# cluster in a folder of its own elsewhere.
data_dir() {
  if [ -n "${PG_DATA:-}" ]; then
    echo "$PG_DATA"
  elif [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$ROOT"; then
    echo "/var/tmp/logistics-pgdata-$(echo "$ROOT" | md5sum | cut -c1-8)"
  else
    echo "$ROOT/.pgdata"
  fi
}
DATA=$(data_dir)

# The cluster's Unix socket when it has one: a round trip over it costs about half the CPU
# of one over loopback TCP, and every message takes a dozen.
local_url() {
  if [ -S "$DATA/run/.s.PGSQL.$PG_PORT" ]; then
    echo "postgres://postgres@$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$DATA/run"):${PG_PORT}/logistics"
  else
    echo "postgres://postgres@127.0.0.1:${PG_PORT}/logistics"
  fi
}

if answers "$(local_url)"; then
  echo "PostgreSQL: local cluster on port $PG_PORT is up" >&2
  local_url
  exit 0
fi

if [ -z "$PG_BIN" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL: binaries missing; installing Debian's postgresql..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  else
    echo "No PostgreSQL server answers and no PostgreSQL binaries found; set DATABASE_URL" >&2
    exit 1
  fi
fi

if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
  AS_PG=(runuser -u postgres --)
else
  AS_PG=()
fi
DATA=$(data_dir)

if [ ! -f "$DATA/PG_VERSION" ]; then
  echo "PostgreSQL: initialising a cluster in $DATA" >&2
  mkdir -p "$DATA"
  [ "$(id -u)" = 0 ] && chown postgres: "$DATA"
  chmod 700 "$DATA"
  "${AS_PG[@]}" "$PG_BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
mkdir -p "$DATA/run" 2>/dev/null || true
[ "$(id -u)" = 0 ] && chown postgres: "$DATA/run"
# Durable as in production (fsync, synchronous_commit and full_page_writes at their defaults):
# the benchmarks measure what a committed order really costs, and the tests see the same server.
echo "PostgreSQL: starting on 127.0.0.1:$PG_PORT" >&2
"${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
  -o "-p $PG_PORT -k $DATA/run -c listen_addresses=127.0.0.1 -c max_connections=300" \
  start >/dev/null || { tail -20 "$DATA/server.log" >&2; exit 1; }
for _ in $(seq 1 30); do
  if answers "$(local_url)"; then
    local_url
    exit 0
  fi
  sleep 1
done
echo "PostgreSQL did not answer on port $PG_PORT; see $DATA/server.log" >&2
exit 1
