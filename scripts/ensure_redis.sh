#!/usr/bin/env bash
# Print the REDIS_URL of a Redis of the checkout's own, started here when it is not running:
# Debian's redis-server (installed first when we are root and it is missing) on 127.0.0.1 port
# REDIS_PORT (default 56379), its files in .run/redis/ (ignored by git), nothing saved to disk.
# It is ours when the server on that port is the process in our pid file; any other Redis (on
# that port or named by REDIS_URL) is never used, stopped or written to. Progress goes to
# stderr; the URL is the only stdout. `scripts/ensure_redis.sh stop` stops ours.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PORT=${REDIS_PORT:-56379}
DIR=$(pwd)/.run/redis
PIDFILE=$DIR/redis-$PORT.pid
URL="redis://127.0.0.1:$PORT/0"

# "ours" when the server answering on PORT runs as the pid in our pid file; "other" when
# something else answers there; "none" when nothing does.
whose() {
  "$PY" - "$URL" "$PIDFILE" <<'PY' 2>/dev/null || echo none
import pathlib, sys
import redis
try:
    pid = redis.from_url(sys.argv[1], socket_timeout=2, socket_connect_timeout=2).info("server")["process_id"]
except redis.exceptions.ConnectionError:
    print("none")
    sys.exit(0)
except Exception:
    print("other")
    sys.exit(0)
pidfile = pathlib.Path(sys.argv[2])
print("ours" if pidfile.exists() and pidfile.read_text().strip() == str(pid) else "other")
PY
}

if [ "${1:-}" = stop ]; then
  if [ "$(whose)" = ours ]; then
    kill "$(cat "$PIDFILE")" && echo "Redis: stopped ours on port $PORT" >&2
  else
    echo "Redis: none of ours on port $PORT" >&2
  fi
  exit 0
fi

case "$(whose)" in
  ours)
    echo "Redis: ours on port $PORT is up" >&2
    echo "$URL"
    exit 0
    ;;
  other)
    echo "Redis: port $PORT is taken by a server this script did not start; choose another with REDIS_PORT" >&2
    exit 1
    ;;
esac

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Redis: not installed; installing Debian's redis-server..." >&2
    policy=/usr/sbin/policy-rc.d added=""
    if [ ! -e "$policy" ]; then  # the package starts no server of its own on 6379 (invoke-rc.d asks this)
      printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && added=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq redis-server >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null
      apt-get install -y -qq redis-server >/dev/null
    } || true
    [ -n "$added" ] && rm -f "$policy"
    command -v redis-server >/dev/null 2>&1 || { echo "Redis: installing Debian's redis-server failed" >&2; exit 1; }
  else
    cat >&2 <<MSG
redis-server is not installed. Install it (sudo apt-get install redis-server) and run this again.
MSG
    exit 1
  fi
fi

mkdir -p "$DIR"
echo "Redis: starting redis-server on 127.0.0.1:$PORT (files in $DIR)..." >&2
redis-server --bind 127.0.0.1 --port "$PORT" --dir "$DIR" --pidfile "$PIDFILE" \
  --logfile "$DIR/redis-$PORT.log" --daemonize yes --save "" --appendonly no >/dev/null
for _ in $(seq 1 50); do
  if [ "$(whose)" = ours ]; then
    echo "$URL"
    exit 0
  fi
  sleep 0.2
done
echo "Redis did not come up within 10 s; the end of its log:" >&2
tail -n 15 "$DIR/redis-$PORT.log" >&2 || true
exit 1
