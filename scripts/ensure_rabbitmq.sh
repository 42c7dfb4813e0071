#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers at RABBITMQ_URL: use it if it does; otherwise start the
# installed rabbitmq-server, installing Debian's package first when we are root.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
URL=${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2F}

ping() { RABBITMQ_URL="$URL" "$PY" scripts/broker_ping.py "$@"; }

if ping; then
  echo "RabbitMQ: reachable" >&2
  exit 0
fi

is_root() { [ "$(id -u)" = 0 ]; }

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  if is_root && command -v apt-get >/dev/null 2>&1; then
    echo "RabbitMQ: not installed; installing Debian's rabbitmq-server..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq rabbitmq-server >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null
      apt-get install -y -qq rabbitmq-server >/dev/null
    }
  else
    cat >&2 <<MSG
RabbitMQ is not reachable at RABBITMQ_URL ($URL) and rabbitmq-server is not installed.
Either point RABBITMQ_URL at a running broker, or install and start one:
    sudo apt-get install rabbitmq-server && sudo rabbitmq-server -detached
MSG
    exit 1
  fi
fi

if ping; then  # the package may have started it
  echo "RabbitMQ: reachable" >&2
  exit 0
fi

if is_root; then
  echo "RabbitMQ: starting rabbitmq-server -detached ..." >&2
  # Debian's wrapper becomes the rabbitmq user through `su`, whose PAM session drops the open
  # file limit to 1024 (about 900 handles for the node). Recovering a few hundred classic queues
  # after an unclean stop then waits on file handles forever. Start it as the rabbitmq user
  # without PAM (setpriv), with the limit Debian's systemd unit gives it (LimitNOFILE=65536).
  ulimit -Hn 65536 2>/dev/null || true
  ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
  if command -v setpriv >/dev/null 2>&1 && id rabbitmq >/dev/null 2>&1; then
    HOME=/var/lib/rabbitmq setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
      rabbitmq-server -detached >/dev/null 2>&1 || rabbitmq-server -detached >/dev/null 2>&1 || true
  else
    rabbitmq-server -detached >/dev/null 2>&1 || true
  fi
else
  echo "RabbitMQ is installed but not running; start it with: sudo rabbitmq-server -detached" >&2
  exit 1
fi

for _ in $(seq 1 90); do
  if ping; then
    echo "RabbitMQ: started" >&2
    exit 0
  fi
  sleep 1
done
ping -v || true
echo "RabbitMQ did not come up within 90 s; the end of its logs (/var/log/rabbitmq/):" >&2
for log in /var/log/rabbitmq/startup_err /var/log/rabbitmq/startup_log "/var/log/rabbitmq/rabbit@$(hostname -s).log"; do
  [ -s "$log" ] && { echo "--- $log" >&2; tail -n 15 "$log" >&2; }
done
exit 1
