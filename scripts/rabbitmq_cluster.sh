#!/usr/bin/env bash
# A RabbitMQ cluster of its own on this machine, beside any broker already running here.
#
#   scripts/rabbitmq_cluster.sh start            # start (or find running) the nodes; prints RABBITMQ_URL
#   scripts/rabbitmq_cluster.sh url              # the RABBITMQ_URL of the cluster (comma-separated nodes)
#   scripts/rabbitmq_cluster.sh status           # each node: running or not
#   scripts/rabbitmq_cluster.sh stop             # stop every node (data kept for the next start)
#   scripts/rabbitmq_cluster.sh destroy          # stop every node (kill -9) and delete its data
#   scripts/rabbitmq_cluster.sh kill-node I      # kill -9 node I (1-based)
#   scripts/rabbitmq_cluster.sh start-node I     # start node I again (it rejoins the cluster)
#   scripts/rabbitmq_cluster.sh pid I            # the Erlang VM's process id of node I
#   scripts/rabbitmq_cluster.sh ctl I ARGS...    # rabbitmqctl against node I
#
# Settings (environment):
#   CLUSTER_NODES  how many nodes (3)
#   CLUSTER_PORT   AMQP port of the first node (5681); node I listens on CLUSTER_PORT+I-1, its
#                  Erlang distribution on that port + 20000 (RabbitMQ's default offset)
#   CLUSTER_NAME   node names are NAME-I@localhost (logistics)
#   CLUSTER_DIR    data, logs, config and the cluster's Erlang cookie (.run/rabbitmq-cluster/NAME)
#
# Each node has its own RABBITMQ_NODENAME, ports, data and log folders, an empty plugin list
# (no management listener to clash with the machine's broker) and the cluster's own cookie (its
# HOME is the cluster folder). Node 1 starts first; the others join it on their first boot
# (classic_config peer discovery). Nothing here touches a broker this script did not start.
# Progress goes to stderr; `start` and `url` print only the URL on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
NODES=${CLUSTER_NODES:-3}
PORT=${CLUSTER_PORT:-5681}
NAME=${CLUSTER_NAME:-logistics}
DIR=${CLUSTER_DIR:-$ROOT/.run/rabbitmq-cluster/$NAME}
BIN=/usr/lib/rabbitmq/bin  # the real scripts; /usr/sbin's wrappers switch to the rabbitmq user
[ -x "$BIN/rabbitmq-server" ] || BIN=$(dirname "$(command -v rabbitmq-server 2>/dev/null || echo /nonexistent/x)")
if [ ! -x "$BIN/rabbitmq-server" ]; then
  echo "rabbitmq-server is not installed (Debian: apt-get install rabbitmq-server)" >&2
  exit 1
fi

node_name() { echo "$NAME-$1@localhost"; }
node_port() { echo $((PORT + $1 - 1)); }
node_dir() { echo "$DIR/node-$1"; }

node_env() {  # the environment of node $1 and of the CLI tools talking to it
  local i=$1 d
  d=$(node_dir "$i")
  export HOME=$DIR  # .erlang.cookie: shared by the nodes and the CLI tools, nobody else's
  export RABBITMQ_CONF_ENV_FILE=/dev/null  # not the machine's /etc/rabbitmq/rabbitmq-env.conf
  export RABBITMQ_NODENAME RABBITMQ_NODE_PORT RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_DIST_PORT
  RABBITMQ_NODENAME=$(node_name "$i")
  RABBITMQ_NODE_PORT=$(node_port "$i")
  RABBITMQ_DIST_PORT=$((RABBITMQ_NODE_PORT + 20000))
  export RABBITMQ_CONFIG_FILE=$DIR/rabbitmq.conf
  export RABBITMQ_ENABLED_PLUGINS_FILE=$DIR/enabled_plugins
  export RABBITMQ_MNESIA_BASE=$d/mnesia RABBITMQ_LOG_BASE=$d/log RABBITMQ_PID_FILE=$d/pid
  export RABBITMQ_PLUGINS_EXPAND_DIR=$d/plugins-expand
  export RABBITMQ_ADVANCED_CONFIG_FILE=$DIR/advanced.config
}

ctl() {  # ctl I ARGS...: rabbitmqctl against node I
  local i=$1
  shift
  (node_env "$i" && "$BIN/rabbitmqctl" -n "$(node_name "$i")" "$@")
}

running() { ctl "$1" -q await_startup --timeout 1 >/dev/null 2>&1; }

url() {
  local urls=() i
  for i in $(seq 1 "$NODES"); do urls+=("amqp://guest:guest@127.0.0.1:$(node_port "$i")/%2F"); done
  (IFS=,; echo "${urls[*]}")
}

write_config() {
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  if [ ! -f "$DIR/.erlang.cookie" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/.erlang.cookie"
    chmod 400 "$DIR/.erlang.cookie"
  fi
  echo "[]." >"$DIR/enabled_plugins"
  echo "[]." >"$DIR/advanced.config"
  {
    echo "cluster_formation.peer_discovery_backend = classic_config"
    for i in $(seq 1 "$NODES"); do echo "cluster_formation.classic_config.nodes.$i = $(node_name "$i")"; done
    echo "loopback_users.guest = true"
  } >"$DIR/rabbitmq.conf"
}

start_node() {
  local i=$1 d
  d=$(node_dir "$i")
  if running "$i"; then
    return 0
  fi
  mkdir -p "$d/log"
  # every descriptor away from ours: a caller reading our output must not wait for the node
  (node_env "$i" && exec setsid "$BIN/rabbitmq-server") >>"$d/log/console.log" 2>&1 </dev/null &
}

await_node() {
  local i=$1 deadline=$((SECONDS + 120))
  # await_startup fails at once while the node's Erlang VM is not up yet: ask again
  until ctl "$i" -q await_startup --timeout 120 >/dev/null 2>&1; do
    if [ "$SECONDS" -lt "$deadline" ]; then sleep 1; continue; fi
    echo "RabbitMQ node $(node_name "$i") did not start; see $(node_dir "$i")/log/" >&2
    tail -20 "$(node_dir "$i")/log/console.log" >&2 || true
    return 1
  done
}

await_cluster() {  # every node running, and each a member of one cluster
  local i n
  for _ in $(seq 1 120); do
    n=$(ctl 1 -q cluster_status --formatter json 2>/dev/null |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("running_nodes", [])))' 2>/dev/null || echo 0)
    if [ "$n" = "$NODES" ]; then
      return 0
    fi
    sleep 1
  done
  echo "RabbitMQ cluster: $n of $NODES nodes running after 120 s" >&2
  for i in $(seq 1 "$NODES"); do tail -5 "$(node_dir "$i")/log/console.log" >&2 || true; done
  return 1
}

pid_of() {
  local f
  f="$(node_dir "$1")/pid"
  [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

case "${1:-}" in
  start)
    write_config
    echo "RabbitMQ cluster: starting $NODES nodes $(node_name 1)..$(node_name "$NODES") on ports $PORT.. in $DIR" >&2
    start_node 1
    await_node 1
    for i in $(seq 2 "$NODES"); do start_node "$i"; done
    for i in $(seq 2 "$NODES"); do await_node "$i"; done
    await_cluster
    echo "RabbitMQ cluster: $NODES nodes running" >&2
    url
    ;;
  url)
    url
    ;;
  status)
    for i in $(seq 1 "$NODES"); do
      if running "$i"; then state=running; else state=stopped; fi
      echo "$(node_name "$i") amqp://127.0.0.1:$(node_port "$i") $state"
    done
    ;;
  stop)
    for i in $(seq "$NODES" -1 1); do
      if running "$i"; then ctl "$i" -q stop >/dev/null 2>&1 || true; fi
    done
    ;;
  destroy)
    for i in $(seq 1 "$NODES"); do
      if pid=$(pid_of "$i"); then kill -9 "$pid" 2>/dev/null || true; fi
    done
    rm -rf "$DIR"
    ;;
  kill-node)
    pid=$(pid_of "${2:?node number}") || { echo "node $2 is not running" >&2; exit 1; }
    kill -9 "$pid"
    ;;
  start-node)
    start_node "${2:?node number}"
    await_node "$2"
    ;;
  pid)
    pid_of "${2:?node number}"
    ;;
  ctl)
    shift
    ctl "$@"
    ;;
  *)
    sed -n '2,11p' "$0" >&2
    exit 2
    ;;
esac
