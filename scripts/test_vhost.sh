#!/usr/bin/env bash
# Print the RabbitMQ URL the tests use: a vhost of their own on the local broker (so a test run
# never purges the queues of a running `make demo`/`make run`), created with rabbitmqctl when we
# can; otherwise RABBITMQ_URL (or the default) unchanged.
set -euo pipefail
VHOST=${TEST_VHOST:-logistics_test}
DEFAULT=amqp://guest:guest@127.0.0.1:5672/%2F
if [ -n "${RABBITMQ_URL:-}" ] && [ "${RABBITMQ_URL}" != "$DEFAULT" ]; then
  echo "$RABBITMQ_URL"   # somebody else's broker: use it as given
  exit 0
fi
if command -v rabbitmqctl >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  if rabbitmqctl -q add_vhost "$VHOST" >/dev/null 2>&1 || rabbitmqctl -q list_vhosts 2>/dev/null | grep -qx "$VHOST"; then
    rabbitmqctl -q set_permissions -p "$VHOST" guest ".*" ".*" ".*" >/dev/null 2>&1 || true
    echo "amqp://guest:guest@127.0.0.1:5672/$VHOST"
    exit 0
  fi
fi
echo "${RABBITMQ_URL:-$DEFAULT}"
