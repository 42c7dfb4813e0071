#!/usr/bin/env bash
# A PostgreSQL primary and one synchronous standby of the checkout's own, beside anything
# already running on this machine.
#
#   scripts/pg_ha.sh start      # start (or find running) both; prints the DATABASE_URL naming both
#   scripts/pg_ha.sh url        # that DATABASE_URL (target_session_attrs=read-write, connect_timeout=2)
#   scripts/pg_ha.sh status     # each server: port, running or not, primary or standby, replication
#   scripts/pg_ha.sh stop       # stop both (data kept for the next start)
#   scripts/pg_ha.sh promote    # pg_ctl promote of the standby (what Patroni does after a failure)
#   scripts/pg_ha.sh kill NODE  # kill -9 of NODE's postmaster and its backends (NODE: primary|standby)
#   scripts/pg_ha.sh pid NODE   # the postmaster's process id of NODE
#   scripts/pg_ha.sh destroy    # stop both (immediately) and delete their data
#
# Settings (environment):
#   PG_HA_DIR   data and logs (.run/pg-ha/, ignored by git): primary/ and standby/
#   PG_HA_PORT  the primary's port (55461); the standby listens on PG_HA_PORT+1
#   PG_HA_DB    the database created on the primary and named in the URL (logistics)
#   PG_BIN      PostgreSQL's server binaries (the newest under /usr/lib/postgresql)
#
# The standby is a pg_basebackup -R of the primary, streaming from it; the primary waits for it
# on every commit (synchronous_standby_names names it, synchronous_commit=on): an order answered
# 201 is on both. These two settings are given to the primary on its command line only, so a
# promoted standby does not wait for a standby of its own that it does not have. After `promote`
# the old primary's data have diverged: `start` refuses them; `destroy` and `start` make a new pair.
# Progress goes to stderr; `start` and `url` print only the URL on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DIR=${PG_HA_DIR:-$ROOT/.run/pg-ha}
PORT=${PG_HA_PORT:-55461}
DB=${PG_HA_DB:-logistics}
STANDBY_NAME=pg_ha_standby
PG_BIN=${PG_BIN:-}
if [ -z "$PG_BIN" ]; then
  for v in 17 16 15 14 13; do
    if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then PG_BIN="/usr/lib/postgresql/$v/bin"; break; fi
  done
fi
if [ -z "$PG_BIN" ]; then
  echo "PostgreSQL's server binaries are not installed (Debian: apt-get install postgresql)" >&2
  exit 1
fi

# PostgreSQL refuses to run as root: as root it runs as the postgres user.
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
  AS_PG=(runuser -u postgres --)
else
  AS_PG=()
fi

node_dir() { echo "$DIR/$1"; }
node_port() { if [ "$1" = primary ]; then echo "$PORT"; else echo $((PORT + 1)); fi; }
check_node() { case "$1" in primary|standby) ;; *) echo "NODE is primary or standby, not '$1'" >&2; exit 2;; esac; }

url() {
  echo "postgres://postgres@127.0.0.1:$(node_port primary),127.0.0.1:$(node_port standby)/$DB?target_session_attrs=read-write&connect_timeout=2"
}

psql_at() {  # psql_at NODE SQL: one value, unaligned
  "$PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$(node_port "$1")" -U postgres -d postgres -c "$2" 2>/dev/null
}

running() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$(node_port "$1")" -t 2 >/dev/null 2>&1; }

pid() {
  local file
  file="$(node_dir "$1")/postmaster.pid"
  [ -f "$file" ] && head -1 "$file"
}

server_start() {  # server_start NODE EXTRA_OPTIONS...
  local node=$1 dir
  shift
  dir=$(node_dir "$node")
  mkdir -p "$DIR/run-$node"  # sockets: beside the data, not in it (pg_basebackup skips them)
  [ "$(id -u)" = 0 ] && chown postgres: "$DIR/run-$node"
  # Durable as in production (fsync, full_page_writes at their defaults).
  "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 120 \
    -o "-p $(node_port "$node") -k $DIR/run-$node -c listen_addresses=127.0.0.1 -c max_connections=300 $*" \
    start >/dev/null || { tail -20 "$dir/server.log" >&2; exit 1; }
}

start() {
  local primary standby
  primary=$(node_dir primary)
  standby=$(node_dir standby)
  mkdir -p "$DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$DIR"
  if [ -f "$standby/PG_VERSION" ] && [ ! -f "$standby/standby.signal" ]; then
    echo "the standby in $standby was promoted: the old primary's data have diverged;" \
         "run scripts/pg_ha.sh destroy, then start, for a new pair" >&2
    exit 1
  fi
  if [ ! -f "$primary/PG_VERSION" ]; then
    echo "PostgreSQL HA: initialising the primary in $primary" >&2
    mkdir -p "$primary"
    [ "$(id -u)" = 0 ] && chown postgres: "$primary"
    chmod 700 "$primary"
    # --auth=trust: 127.0.0.1 only, for the checkout's own tests and demo (replication included)
    "${AS_PG[@]}" "$PG_BIN/initdb" -D "$primary" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if running primary; then
    echo "PostgreSQL HA: primary on port $(node_port primary) is up" >&2
  else
    echo "PostgreSQL HA: starting the primary on 127.0.0.1:$(node_port primary)" >&2
    server_start primary "-c synchronous_standby_names=$STANDBY_NAME -c synchronous_commit=on"
  fi
  if [ ! -f "$standby/PG_VERSION" ]; then
    echo "PostgreSQL HA: copying the primary into $standby (pg_basebackup -R)" >&2
    rm -rf "$standby"
    mkdir -p "$standby"
    [ "$(id -u)" = 0 ] && chown postgres: "$standby"
    chmod 700 "$standby"
    # -R writes standby.signal and primary_conninfo (with this application_name, the name the
    # primary's synchronous_standby_names waits for)
    "${AS_PG[@]}" "$PG_BIN/pg_basebackup" -D "$standby" -R -X stream -c fast \
      -d "host=127.0.0.1 port=$(node_port primary) user=postgres application_name=$STANDBY_NAME" >&2
    rm -f "$standby/postmaster.pid" "$standby/server.log"
  fi
  if running standby; then
    echo "PostgreSQL HA: standby on port $(node_port standby) is up" >&2
  else
    echo "PostgreSQL HA: starting the standby on 127.0.0.1:$(node_port standby)" >&2
    server_start standby "-c hot_standby=on"
  fi
  local state=""
  for _ in $(seq 1 60); do
    state=$(psql_at primary "SELECT sync_state FROM pg_stat_replication WHERE application_name = '$STANDBY_NAME'" || true)
    [ "$state" = sync ] && break
    sleep 1
  done
  if [ "$state" != sync ]; then
    echo "the standby did not become synchronous (state '$state'); see $standby/server.log" >&2
    exit 1
  fi
  if [ -z "$(psql_at primary "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]; then
    psql_at primary "CREATE DATABASE \"$DB\"" >/dev/null
  fi
  echo "PostgreSQL HA: primary $(node_port primary), synchronous standby $(node_port standby)" >&2
  url
}

status() {
  local node role
  for node in primary standby; do
    if running "$node"; then
      role=$(psql_at "$node" "SELECT CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END")
      if [ "$role" = primary ]; then
        role="$role, standbys: $(psql_at "$node" "SELECT coalesce(string_agg(application_name || ' ' || state || ' ' || sync_state, ', '), 'none') FROM pg_stat_replication")"
      fi
      echo "$node 127.0.0.1:$(node_port "$node") running ($role)"
    else
      echo "$node 127.0.0.1:$(node_port "$node") not running"
    fi
  done
}

stop() {
  local node mode=${1:-fast}
  for node in primary standby; do  # the primary first: no commit left waiting for a standby
    if [ -f "$(node_dir "$node")/postmaster.pid" ]; then
      "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$(node_dir "$node")" stop -m "$mode" -w -t 60 >/dev/null 2>&1 || true
    fi
  done
}

kill_node() {  # the postmaster and every backend it started, all at once
  local node=$1 p children
  check_node "$node"
  p=$(pid "$node") || { echo "$node is not running" >&2; exit 1; }
  children=$(pgrep -P "$p" || true)
  # shellcheck disable=SC2086
  kill -9 "$p" $children 2>/dev/null || true
  echo "$p"
}

case "${1:-}" in
  start) start ;;
  url) url ;;
  status) status ;;
  stop) stop fast ;;
  promote)
    "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$(node_dir standby)" promote -w -t 60 >&2
    ;;
  kill) kill_node "${2:-}" ;;
  pid) check_node "${2:-}"; pid "$2" ;;
  destroy)
    stop immediate
    for node in primary standby; do  # a server killed -9 leaves backends behind for a moment
      p=$(pid "$node" 2>/dev/null) && kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$DIR"
    ;;
  *)
    sed -n '2,13p' "$0" >&2
    exit 2
    ;;
esac
