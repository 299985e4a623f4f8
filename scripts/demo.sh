#!/usr/bin/env bash
# Store-and-forward, shown end to end on this machine, no cloud account needed:
# builds edge-agent and a small dev MQTT broker, publishes through the agent's Unix socket, stops the
# broker so messages queue on disk, brings it back and shows every message arrive.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/build.env

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf '\n\033[31mdemo failed: %s\033[0m\n' "$*" >&2; exit 1; }

command -v go >/dev/null || fail "Go is not installed (https://go.dev/doc/install)"

work=$(mktemp -d /tmp/edge-agent-demo.XXXXXX)
bin="$work/bin"
mkdir -p "$bin"
broker_pid="" agent_pid="" sub_pid=""
cleanup() {
  for p in $sub_pid $agent_pid $broker_pid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

say "Building edge-agent and the dev broker"
CGO_ENABLED=0 go build -tags "$GO_TAGS" -trimpath -ldflags "-s -w" -o "$bin/edge-agent" ./cmd/agent
go build -o "$bin/devbroker" ./cmd/devbroker
ls -l "$bin/edge-agent" | awk '{printf "    edge-agent binary: %.1f MB (static)\n", $5/1048576}'

# A free loopback port for the broker's WebSocket listener.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18083)

start_broker() {
  "$bin/devbroker" -ws "127.0.0.1:$port" -v >>"$work/broker.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$work/broker.log"; fail "dev broker did not start"
}

say "Starting the dev broker (MQTT 5 over WebSocket) on ws://127.0.0.1:$port/mqtt"
start_broker

cat >"$work/agent.toml" <<EOF
client_id = "demo-gateway"
state_dir = "$work/state"
socket    = "$work/agent.sock"

[broker]
provider  = "mqtt"
url       = "ws://127.0.0.1:$port/mqtt"
keepalive = "5s"

[queue]
max_bytes = "16MiB"
EOF
export EDGE_AGENT_SOCKET="$work/agent.sock"
ea() { "$bin/edge-agent" "$@"; }

say "Starting edge-agent (state in $work/state, socket $work/agent.sock)"
"$bin/edge-agent" run --config "$work/agent.toml" >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 100); do [ -S "$work/agent.sock" ] && break; sleep 0.1; done
[ -S "$work/agent.sock" ] || { cat "$work/agent.log"; fail "agent did not start"; }
for _ in $(seq 100); do ea status --json | grep -q '"state":"connected"' && break; sleep 0.1; done
ea status

say "A local program subscribes to broker messages (edge-agent sub -t demo/# -v)"
ea sub -t 'demo/#' -v >"$work/sub.out" 2>&1 &
sub_pid=$!
sleep 0.5

count_arrived() { grep -c 'demo/reading' "$work/sub.out" || true; }

say "Publishing 5 readings while the broker is up"
seq 1 5 | sed 's/^/reading-/' | ea pub -t demo/reading -q 1 -l
sleep 1
echo "    arrived at the broker and back: $(count_arrived) of 5"

say "Stopping the broker: the uplink is gone"
kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true; broker_pid=""
for _ in $(seq 100); do ea status --json | grep -q '"state":"connected"' || break; sleep 0.1; done

say "Publishing 20 more readings while offline: each is fsync'd to disk before the agent says yes"
seq 6 25 | sed 's/^/reading-/' | ea pub -t demo/reading -q 1 -l
ea status
echo
echo "    queued on disk: $(ea status --json | sed -n 's/.*"depth":\([0-9]*\).*/\1/p') messages"

say "Bringing the broker back: the agent reconnects (jittered backoff) and drains the queue in order"
start_broker
for _ in $(seq 300); do
  [ "$(count_arrived)" -ge 25 ] && break
  sleep 0.1
done
ea status
echo
echo "    readings received by the subscriber, in order:"
grep 'demo/reading' "$work/sub.out" | awk '{print "      " $0}'
n=$(count_arrived)
[ "$n" -ge 25 ] || fail "only $n of 25 readings arrived"
say "All 25 readings arrived: 5 live, 20 stored while offline and forwarded on reconnect."
