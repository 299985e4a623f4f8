#!/usr/bin/env bash
# Whole-system figures for edge-agent, side by side with anchors measured in the same run (make bench).
#
# Runs the real static agent binary against real Mosquitto brokers (WebSocket listeners on free
# loopback ports; Receive Maximum 20, Mosquitto's default, and 100, AWS IoT's) with mosquitto_sub as
# the checker, and prints one Markdown table: figure | edge-agent | anchor | anchor value | ratio.
#   - flash wear: /proc/<pid>/io write_bytes of the agent per 200 B message, one message per request
#     (anchor: SQLite, WAL, synchronous=FULL, insert then delete per message, via the sqlite3 CLI) and
#     in NDJSON batches of 1,000 (anchor: the raw topic+payload bytes); removal after delivery included
#   - queue file size at a backlog of BIG_N messages and after it drained (anchor: raw bytes)
#   - drain rate of a backlog of 10,000 and BIG_N (anchor: cmd/barepub, a bare paho.golang QoS 1
#     publisher with the same window on the same path), on loopback and through a proxy adding
#     10 ms each way; the agent's peak RssAnon while draining
#   - 20,000 messages via `edge-agent pub -l` until all are at the remote subscriber (anchor: a
#     Mosquitto bridge: mosquitto_pub -> persistent local Mosquitto -> bridge -> remote Mosquitto)
#   - durable ingest rate, latency to PUBACK, stripped binary sizes (anchor: the targets)
# Every message is checked to arrive; any failure exits non-zero. Writes nothing into the repository.
#
#   scripts/bench.sh                  quick run (BIG_N=100000: about 3-5 min on 2 cores)
#   BIG_N=1000000 scripts/bench.sh    the full run of issue 8's table (1M backlog: ~10 min more)
#   ARCH=armv6 scripts/bench.sh       the armv6 binary under qemu-arm-static (wear, ingest, file only)
#
# Environment: BIG_N (big backlog; default 100000, 20000 emulated), SMALL_N (small backlog, 10000),
# WEAR_N (one-message requests for the wear figure, 2000), ND_N (NDJSON messages, 20000),
# ONLINE_N (pub -l vs bridge, 20000), SETTLE (write_bytes unchanged this long = the agent's
# writes, delayed commits included, are done; 3s), DELAY (proxy delay each way, 10ms), BIG_PROXY=1
# (also drain BIG_N through the proxy: at Receive Maximum 20 and 20 ms RTT that is ~1,000 msg/s),
# BENCH_DIR (where the temp dir goes; default $TMPDIR or /tmp: it must be a real disk, write_bytes
# and fsync mean nothing on tmpfs), VERSION (stamped into the binaries).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/build.env

ARCH=${ARCH:-}
while [ $# -gt 0 ]; do
	case "$1" in
	--arch) ARCH=${2:?--arch needs a value: armv6, armv7, arm64 or amd64}; shift 2 ;;
	--arch=*) ARCH=${1#--arch=}; shift ;;
	-h | --help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench: unknown argument $1 (use --arch ARCH)" >&2; exit 2 ;;
	esac
done

PAYLOAD=200                  # bytes per message (issue 8's figures)
SMALL_N=${SMALL_N:-10000}    # small backlog
WEAR_N=${WEAR_N:-2000}       # one-message requests (figure 1)
ND_N=${ND_N:-20000}          # NDJSON messages, batches of 1,000 by pub -l (figure 2)
ONLINE_N=${ONLINE_N:-20000}  # pub -l vs the bridge (figure 5)
LAT_N=1000                   # sequential wait=delivered publishes
DELAY=${DELAY:-10ms}         # proxy delay, each way
BIG_PROXY=${BIG_PROXY:-0}
SETTLE=${SETTLE:-3s}                    # write_bytes unchanged this long = the agent's writes are done
SHRINK_WAIT=15               # seconds to wait for the queue file to shrink after a drain
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}

start_s=$SECONDS
say() { printf '==> [%3ds] %s\n' $((SECONDS - start_s)) "$*" >&2; }

work=""
pids=() # every background process we started (brokers, checkers, proxies); the agent is agent_pid
agent_pid=""
die() {
	printf '\nbench FAILED: %s\n' "$*" >&2
	if [ -n "$work" ]; then
		if grep -q '^panic\|panic serving' "$work/agent.log" 2>/dev/null; then
			printf -- '--- agent.log: first panic ---\n' >&2
			grep -m1 -A1 '^panic\|panic serving' "$work/agent.log" >&2
		fi
		for f in agent.log m20.log m100.log mlocal.log sub20.err sub100.err pub.err; do
			[ -s "$work/$f" ] && { printf -- '--- %s (last 15 lines) ---\n' "$f" >&2; tail -n 15 "$work/$f" >&2; }
		done
	fi
	exit 1
}

# ---- what to run ---------------------------------------------------------------------------
host_arch=$(go env GOARCH 2>/dev/null) || die "Go is not installed (https://go.dev/doc/install)"
[ "$(go env GOOS)" = linux ] || die "bench.sh needs Linux (it reads /proc and runs Mosquitto)"
case "${ARCH:-$host_arch}" in
amd64) target=amd64 goarch=amd64 goarm="" qemu="" ;;
arm64) target=arm64 goarch=arm64 goarm="" qemu=qemu-aarch64-static ;;
armv7) target=armv7 goarch=arm goarm=7 qemu=qemu-arm-static ;;
armv6) target=armv6 goarch=arm goarm=6 qemu=qemu-arm-static ;;
*) die "ARCH=$ARCH is not one of amd64, arm64, armv7, armv6" ;;
esac
if [ "$goarch" = "$host_arch" ] && { [ "$goarch" != arm ] || [ "$(uname -m)" = armv${goarm}l ]; }; then
	qemu="" # native
fi
emulated=false
[ -n "$qemu" ] && emulated=true
if $emulated; then BIG_N=${BIG_N:-20000}; else BIG_N=${BIG_N:-100000}; fi
for v in BIG_N SMALL_N WEAR_N ND_N ONLINE_N; do
	[[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v=${!v} is not a positive number"
done
[[ "$DELAY" =~ ^[0-9]+ms$ ]] || die "DELAY=$DELAY: give milliseconds, e.g. 10ms"

# ---- tools ---------------------------------------------------------------------------------
need_root_install() { # $1 = what is missing, $2… = Debian packages
	local what=$1; shift
	if [ "$(id -u)" -ne 0 ]; then
		die "$what is not installed and this is not root. Run:
    sudo env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update && apt-get install -y $*'
then run this script again."
	fi
	command -v apt-get >/dev/null || die "$what is missing and apt-get is not available: install $* by hand."
	say "installing $* with apt-get"
	DEBIAN_FRONTEND=noninteractive apt-get update >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2
}
have_mosquitto() {
	{ command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; } &&
		command -v mosquitto_sub >/dev/null && command -v mosquitto_pub >/dev/null
}
have_mosquitto || need_root_install "Mosquitto" mosquitto mosquitto-clients
have_mosquitto || die "mosquitto, mosquitto_sub or mosquitto_pub still missing after apt-get install"
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
command -v sqlite3 >/dev/null || need_root_install "the sqlite3 CLI (the wear anchor)" sqlite3
command -v sqlite3 >/dev/null || die "sqlite3 still missing after apt-get install"
if $emulated && ! command -v "$qemu" >/dev/null; then
	need_root_install "$qemu" qemu-user-static
	command -v "$qemu" >/dev/null || die "$qemu still missing after installing qemu-user-static"
fi
command -v timeout >/dev/null || die "timeout (coreutils) is missing"
[ -r "/proc/$$/io" ] || die "/proc/<pid>/io is not readable here (kernel without task I/O accounting?)"

work=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/edge-agent-bench.XXXXXX")
cleanup() {
	local p
	stop_agent 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fs=$(df -PT "$work" | awk 'NR == 2 { print $2 }')
[ "$fs" != tmpfs ] || die "the temp dir $work is on tmpfs: write_bytes and fsync mean nothing there; set BENCH_DIR to a directory on a disk"

now_ns() { date +%s%N; }
# rate COUNT START_NS END_NS → messages per second, rounded
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { d = (b - a) / 1e9; if (d <= 0) d = 1e-9; printf "%.0f", n / d }'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f×", a / b }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a / b }'; }
mib() { awk -v s="$1" 'BEGIN { printf "%.1f MiB", s / 1048576 }'; }
kib() { awk -v s="$1" 'BEGIN { if (s >= 1024) printf "%.1f KiB", s / 1024; else printf "%d B", s }'; }
group() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }
max() { if [ "$1" -gt "$2" ]; then echo "$1"; else echo "$2"; fi; }

# ---- build ---------------------------------------------------------------------------------
bin="$work/bin"
mkdir -p "$bin" "$work/dist"
ldflags="-s -w -X main.version=$VERSION"
say "building edge-agent ($VERSION, CGO_ENABLED=0, stripped) for amd64, arm64, armv7, armv6; cmd/benchclient, cmd/barepub"
build() { # name goarch goarm
	local vars=(CGO_ENABLED=0 GOOS=linux GOARCH="$2")
	[ -z "$3" ] || vars+=(GOARM="$3")
	env "${vars[@]}" go build -tags "$GO_TAGS" -trimpath -ldflags "$ldflags" -o "$work/dist/edge-agent-linux-$1" ./cmd/agent ||
		die "building edge-agent for $1 failed"
}
build amd64 amd64 ""
build arm64 arm64 ""
build armv7 arm 7
build armv6 arm 6
CGO_ENABLED=0 go build -tags "$GO_TAGS" -trimpath -ldflags "$ldflags" -o "$bin/edge-agent" ./cmd/agent || die "building the native edge-agent CLI failed"
go build -o "$bin/benchclient" ./cmd/benchclient || die "building cmd/benchclient failed"
go build -o "$bin/barepub" ./cmd/barepub || die "building cmd/barepub failed"
bc="$bin/benchclient"
ea() { timeout 300 "$bin/edge-agent" "$@"; }
agent_bin="$work/dist/edge-agent-linux-$target"
$emulated && agent_cmd=("$qemu" "$agent_bin") || agent_cmd=("$bin/edge-agent")

# ---- brokers, checkers, proxies ------------------------------------------------------------
# m20 and m100: the "remote" brokers (Receive Maximum 20 and 100), each with a plain listener for its
# checker and a WebSocket listener for the agent and barepub. mlocal: the bridge's local broker.
read -r t20 w20 t100 w100 tlocal dead_port < <("$bc" ports 6) || die "no free loopback ports"
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start_broker() { # name conf-lines… (listeners included)
	local name=$1; shift
	mkdir -p "$work/$name"
	{
		echo "per_listener_settings false"
		echo "allow_anonymous true"
		[ "$(id -u)" -ne 0 ] || echo "user root" # else it switches to user mosquitto, who cannot write the 0700 temp dir
		echo "log_dest file $work/$name.log"
		echo "log_type error"
		echo "log_type warning"
		echo "log_type notice"
		echo "max_queued_messages 10000000"
		echo "max_queued_bytes 0"
		printf '%s\n' "$@"
	} >"$work/$name.conf"
	"$mosq" -c "$work/$name.conf" >>"$work/$name.out" 2>&1 &
	pids+=($!)
	local pid=$! p ok
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || die "mosquitto $name exited at start"
		ok=true
		for p in $(sed -n 's/^listener \([0-9]*\).*/\1/p' "$work/$name.conf"); do port_open "$p" || ok=false; done
		$ok && return 0
		sleep 0.05
	done
	die "mosquitto $name did not open its listeners within 10 s"
}
# checker NAME TCP_PORT: mosquitto_sub on bench/# into $work/NAME.out, one line "topic payload"
checker() {
	mosquitto_sub -h 127.0.0.1 -p "$2" -V mqttv311 -q 1 -c -i "bench-$1-$$" -t 'bench/#' -F '%t %p' \
		>"$work/$1.out" 2>"$work/$1.err" &
	pids+=($!)
	local i
	for i in $(seq 100); do
		mosquitto_pub -h 127.0.0.1 -p "$2" -q 1 -t bench/probe -m "probe-$i" 2>/dev/null || true
		sleep 0.1
		grep -q '^bench/probe ' "$work/$1.out" && return 0
	done
	die "the checker mosquitto_sub on port $2 did not receive a probe within 10 s"
}
start_proxy() { # name target-port → sets ${name}_port
	"$bc" proxy -target "127.0.0.1:$2" -delay "$DELAY" >"$work/$1.port" 2>"$work/$1.err" &
	pids+=($!)
	for _ in $(seq 100); do
		[ -s "$work/$1.port" ] && { printf -v "$1_port" '%s' "$(head -n1 "$work/$1.port")"; return 0; }
		sleep 0.05
	done
	die "the proxy $1 did not start: $(cat "$work/$1.err")"
}

say "starting mosquitto ($("$mosq" -h 2>/dev/null | head -n1 | sed 's/^mosquitto //')) x2: Receive Maximum 20 and 100, checkers, proxies (+$DELAY each way)"
start_broker m20 "listener $t20 127.0.0.1" "listener $w20 127.0.0.1" "protocol websockets"
start_broker m100 "max_inflight_messages 100" "listener $t100 127.0.0.1" "listener $w100 127.0.0.1" "protocol websockets"
checker sub20 "$t20"
checker sub100 "$t100"
start_proxy px20 "$w20"
start_proxy px100 "$w100"
url() { # rm path → WebSocket URL
	case "$2" in
	lo) [ "$1" = 20 ] && echo "ws://127.0.0.1:$w20/mqtt" || echo "ws://127.0.0.1:$w100/mqtt" ;;
	px) [ "$1" = 20 ] && echo "ws://127.0.0.1:$px20_port/mqtt" || echo "ws://127.0.0.1:$px100_port/mqtt" ;;
	esac
}
dead_url="ws://127.0.0.1:$dead_port/mqtt" # nothing listens: the agent queues

# ---- the agent -----------------------------------------------------------------------------
export EDGE_AGENT_SOCKET="$work/agent.sock"
state_is() { ea status --json 2>/dev/null | grep -q "\"state\":\"$1\""; }
depth() { ea status --json | sed -n 's/.*"depth":\([0-9]*\).*/\1/p'; }
field() { ea status --json | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
# start_agent URL CONNECTED(true|false) [FRESH(true|false)]: a new agent process on URL, with a new
# state_dir unless FRESH=false. Its output goes through a pipe (cat), so the log's writes are not in
# the agent's write_bytes.
start_agent() {
	[ "${3:-true}" = false ] || rm -rf "$work/state"
	cat >"$work/agent.toml" <<EOF
client_id = "bench-agent"
state_dir = "$work/state"
socket    = "$work/agent.sock"

[broker]
provider     = "mqtt"
url          = "$1"
keepalive    = "10s"
max_inflight = 100

[queue]
max_bytes = "8GiB"
overflow  = "reject"
EOF
	"${agent_cmd[@]}" run --config "$work/agent.toml" > >(exec cat >>"$work/agent.log") 2>&1 &
	agent_pid=$!
	local want=$2
	for _ in $(seq 600); do
		kill -0 "$agent_pid" 2>/dev/null || die "the agent exited at start"
		if $want; then state_is connected && return 0; else ea status --json >/dev/null 2>&1 && return 0; fi
		sleep 0.05
	done
	die "the agent did not $($want && echo "connect to $1" || echo "answer GET /v1/status") within 30 s"
}
stop_agent() {
	[ -n "$agent_pid" ] || return 0
	kill "$agent_pid" 2>/dev/null || true
	for _ in $(seq 200); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.05; done
	kill -9 "$agent_pid" 2>/dev/null || true
	wait "$agent_pid" 2>/dev/null || true
	agent_pid=""
}
settle() { "$bc" settle -pid "$agent_pid" -quiet "$SETTLE" -timeout 120s || die "write_bytes of the agent did not settle"; }
disk() { # state dir: "apparent on-disk" bytes
	echo "$(du -sb --apparent-size "$work/state" | cut -f1) $(du -sB1 "$work/state" | cut -f1)"
}

# wait_all CHECKER TOPIC COUNT AFTER_NS TIMEOUT_S [agent|rss]: waits until the checker has COUNT distinct
# payloads on TOPIC (and, with "agent", the agent's queue is empty; with "agent" or "rss" its RssAnon
# is sampled from /proc), then sets connected_ns, depth0_ns, all_ns, received, dups, rss_anon_peak_kib.
# "rss" asks the agent nothing (no GET /v1/status every 10 ms): the drain figures use it, so that the
# agent pays for no observer the bare publisher does not pay for. With $offset set, the checker's
# output before that byte (earlier runs) is not read again.
wait_all() {
	local out
	out=$(wait_cmd "$@") || die "messages missing on $2 (see above)"
	eval "$out"
	[ "$dups" -eq 0 ] || notes+=("$2: the checker saw $dups duplicates (at least once)")
}
wait_cmd() {
	local args=(-checker "$work/$1.out" -topic "$2" -n "$3" -after "$4" -timeout "$5s" -offset "${offset:-0}")
	case "${6:-}" in
	agent) args+=(-socket "$work/agent.sock" -pid "$agent_pid") ;;
	rss) args+=(-pid "$agent_pid") ;;
	esac
	"$bc" wait "${args[@]}"
}
# since_ns: when the agent's connection state last changed (status "since"), Unix ns.
since_ns() {
	local s
	s=$(ea status --json | sed -n 's/.*"since":"\([^"]*\)".*/\1/p')
	[ -n "$s" ] || die "no \"since\" in the agent's status"
	date -d "$s" +%s%N
}
pub_lines() { # TOPIC FILE
	ea pub -t "$1" -q 1 -l <"$2" 2>"$work/pub.err" || die "edge-agent pub -l to $1 failed: $(cat "$work/pub.err")"
}

rows=()  # "figure|edge-agent|anchor|anchor value|ratio"
notes=() # method notes printed under the table
row() { rows+=("$1|$2|$3|$4|$5"); }

# ---- 1. wear, one message per request; anchor SQLite ---------------------------------------
say "1. wear: $WEAR_N one-message POSTs (agent connected, Receive Maximum 100, loopback)"
start_agent "$(url 100 lo)" true
"$bc" lines -n 1 -size "$PAYLOAD" -tag warm >"$work/warm.txt"
pub_lines bench/warm "$work/warm.txt" # the file's first pages and buckets exist before measuring
wait_all sub100 bench/warm 1 0 60 agent
wb0=$(settle)
t0=$(now_ns)
"$bc" posts -socket "$work/agent.sock" -n "$WEAR_N" -topic bench/wear/req -size "$PAYLOAD" -tag req -timeout 300s ||
	die "one-message POSTs failed"
t1=$(now_ns)
wait_all sub100 bench/wear/req "$WEAR_N" 0 120 agent
wb1=$(settle)
wear_req=$(div $((wb1 - wb0)) "$WEAR_N")
req_rate=$(rate "$WEAR_N" "$t0" "$t1")

say "1. anchor: SQLite WAL, synchronous=FULL, $WEAR_N x (insert; delete), sqlite3 CLI"
{
	echo "PRAGMA journal_mode=WAL;"
	echo "PRAGMA synchronous=FULL;"
	echo "CREATE TABLE spool(id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL);"
	echo "INSERT INTO spool(topic, payload) VALUES('bench/warm', 'x'); DELETE FROM spool;"
	echo ".system cat /proc/\$PPID/io > $work/sqlite.io0"
	"$bc" lines -n "$WEAR_N" -size "$PAYLOAD" -tag sql |
		awk '{ printf "INSERT INTO spool(id, topic, payload) VALUES(%d, '\''bench/wear/req'\'', '\''%s'\'');\nDELETE FROM spool WHERE id = %d;\n", NR, $0, NR }'
	echo ".system cat /proc/\$PPID/io > $work/sqlite.io1"
} >"$work/anchor.sql"
timeout 300 sqlite3 -bail "$work/anchor.db" <"$work/anchor.sql" >"$work/sqlite.out" 2>&1 || die "sqlite3 anchor failed: $(tail -n 5 "$work/sqlite.out")"
grep -q '^wal$' "$work/sqlite.out" || die "sqlite3 did not switch to WAL mode: $(head -n 3 "$work/sqlite.out")"
[ "$(sqlite3 "$work/anchor.db" 'SELECT count(*) FROM spool;')" = 0 ] || die "the SQLite anchor left rows behind"
swb0=$(sed -n 's/^write_bytes: //p' "$work/sqlite.io0")
swb1=$(sed -n 's/^write_bytes: //p' "$work/sqlite.io1")
[ -n "$swb0" ] && [ -n "$swb1" ] || die "could not read the sqlite3 process's /proc/<pid>/io"
wear_sql=$(div $((swb1 - swb0)) "$WEAR_N")
row "bytes written per $PAYLOAD B message, one message per request, removal included" "$(kib "$wear_req")" \
	"SQLite WAL, synchronous=FULL, insert + delete" "$(kib "$wear_sql")" "$(ratio "$wear_req" "$wear_sql")"
notes+=("wear, one per request: $WEAR_N sequential POST /v1/publish?qos=1 (202 each, $(group "$req_rate") req/s), all checked at mosquitto_sub, then /proc/<agent>/io write_bytes until unchanged for $SETTLE; target ≤ 12 KiB. Anchor: the sqlite3 CLI, one autocommit INSERT and one DELETE per message, write_bytes of the sqlite3 process (its exit checkpoint not counted). write_bytes counts each 4 KiB page dirtied: a 4,120 B WAL frame dirties two, so each commit costs ~8 KiB (insert and delete in ONE transaction would give ~8 KiB per message)")

# ---- 2. wear, NDJSON batches ---------------------------------------------------------------
ND_TOPIC=bench/wear/nd
raw_nd=$((${#ND_TOPIC} + PAYLOAD))
say "2. wear: $ND_N messages in NDJSON batches of 1,000 (pub -l), delivered"
"$bc" lines -n "$ND_N" -size "$PAYLOAD" -tag nd >"$work/nd.txt"
wb0=$(settle)
t0=$(now_ns)
pub_lines "$ND_TOPIC" "$work/nd.txt"
t1=$(now_ns)
wait_all sub100 "$ND_TOPIC" "$ND_N" 0 300 agent
wb1=$(settle)
wear_nd=$(div $((wb1 - wb0)) "$ND_N")
nd_rate=$(rate "$ND_N" "$t0" "$t1")
row "bytes written per message, NDJSON batches of 1,000 × $PAYLOAD B, drain included" "$(kib "$wear_nd")" \
	"raw topic + payload" "$raw_nd B" "$(ratio "$wear_nd" "$raw_nd")"
notes+=("wear, NDJSON: edge-agent pub -l of $(group "$ND_N") lines (batches of 1,000), broker up, all delivered; target ≤ 2.5× raw")

if ! $emulated; then
	say "6. latency: $LAT_N sequential publishes with wait=delivered"
	lat=$("$bc" latency -socket "$work/agent.sock" -n "$LAT_N" -topic bench/latency -size "$PAYLOAD" -timeout 120s) ||
		die "the latency run failed"
	wait_all sub100 bench/latency "$LAT_N" 0 60 agent
	eval "$(tr ' ' '\n' <<<"$lat" | sed -n 's/^\(p50_ms\|p99_ms\|max_ms\)=/lat_\1=/p')"
fi
stop_agent

# ---- 4. drain, with 3. the queue file at BIG_N ---------------------------------------------
# drain_agent N RM PATH MEASURE: fills a fresh queue offline, restarts the agent on the broker,
# measures the drain from its connect (status since) until the queue is empty and the checker has
# all. MEASURE=true also takes the written bytes and the file size before and after.
drain_agent() {
	local n=$1 rm=$2 path=$3 measure=$4 topic="bench/drain/$2-$3-$1" out
	say "4. drain: edge-agent, $(group "$n") queued, Receive Maximum $rm, $([ "$path" = lo ] && echo loopback || echo "proxy +$DELAY each way")"
	start_agent "$dead_url" false
	"$bc" lines -n "$n" -size "$PAYLOAD" -tag "d$rm$path" >"$work/drain.txt"
	local t0 t1 d
	t0=$(now_ns)
	pub_lines "$topic" "$work/drain.txt"
	t1=$(now_ns)
	d=$(depth)
	[ "$d" -eq "$n" ] || die "queue depth is $d after $n messages were accepted offline, want $n"
	fill_rate=$(rate "$n" "$t0" "$t1")
	if $measure; then
		fill_wb=$(settle)
		read -r fill_app fill_disk < <(disk)
	fi
	stop_agent
	local tb
	tb=$(now_ns)
	# Nothing asks the agent anything while it drains: its connect time is read from status "since"
	# afterwards, and its log shows that it connected exactly once meanwhile.
	local offset connects
	offset=$(stat -c %s "$work/sub$rm.out")
	connects=$(grep -c 'mqtt connected' "$work/agent.log" || true)
	start_agent "$(url "$rm" "$path")" false false
	wait_all "sub$rm" "$topic" "$n" "$tb" 3600 rss
	connected_ns=$(since_ns)
	[ "$connected_ns" -gt "$tb" ] || die "could not tell when the agent connected (status since)"
	[ "$(grep -c 'mqtt connected' "$work/agent.log")" -eq $((connects + 1)) ] ||
		die "the agent did not connect exactly once during the drain (agent.log)"
	recv_max=$(field receive_maximum)
	[ "$recv_max" = "$rm" ] || die "the agent's receive_maximum is $recv_max, want $rm"
	# Delivery ends when the remote subscriber has every message. The queue's depth reaches 0 up to the
	# queue's removal delay later (removals ride on a later commit, by design), so it is not the end.
	drain_rate=$(rate "$n" "$connected_ns" "$all_ns")
	drain_rss=$rss_anon_peak_kib
	if ! $measure; then
		stop_agent
		return 0
	fi
	drain_wb=$(settle)
	# Does the space go back? Poll the state dir for up to SHRINK_WAIT s.
	local i
	for i in $(seq $((SHRINK_WAIT * 10))); do
		read -r after_app after_disk < <(disk)
		[ "$after_disk" -lt $((fill_disk / 2)) ] && break
		sleep 0.1
	done
	stop_agent
}
# drain_bare N RM PATH: the same backlog from cmd/barepub's memory, same window, same path.
drain_bare() {
	local n=$1 rm=$2 path=$3 topic="bench/bare/$2-$3-$1" out
	say "4. drain: bare paho.golang publisher, $(group "$n") messages, Receive Maximum $rm, $path"
	# The checker's wait runs during the publish, as it does during the agent's drain.
	local offset
	offset=$(stat -c %s "$work/sub$rm.out")
	wait_cmd "sub$rm" "$topic" "$n" 0 3600 >"$work/bare.wait" &
	local waiter=$!
	out=$(timeout 3700 "$bin/barepub" -url "$(url "$rm" "$path")" -n "$n" -topic "$topic" -size "$PAYLOAD" \
		-tag "b$rm$path" -timeout 3600s) || die "barepub failed"
	eval "$out"
	[ "$window" = "$rm" ] || die "barepub's window is $window, want $rm"
	wait "$waiter" || die "messages missing on $topic (see above)"
	eval "$(cat "$work/bare.wait")"
	[ "$dups" -eq 0 ] || notes+=("$topic: the checker saw $dups duplicates (at least once)")
	bare_rate=$(rate "$n" "$connack_ns" "$(max "$done_ns" "$all_ns")")
}
pathname() { [ "$1" = lo ] && echo "loopback" || echo "proxy +$DELAY each way"; }

declare -A drained # "n rm path" → agent rate
if ! $emulated; then
	runs=("$SMALL_N 20 lo" "$SMALL_N 100 lo" "$SMALL_N 20 px" "$SMALL_N 100 px" "$BIG_N 20 lo" "$BIG_N 100 lo")
	[ "$BIG_PROXY" != 1 ] || runs+=("$BIG_N 20 px" "$BIG_N 100 px")
else
	runs=("$BIG_N 100 lo")
fi
big_done=false
for r in "${runs[@]}"; do
	read -r n rm path <<<"$r"
	[ "$n" = "$BIG_N" ] && [ "$BIG_N" = "$SMALL_N" ] && [ "$path" = lo ] && continue
	if $emulated; then
		# Emulated: the file and ingest figures only (a drain under qemu says nothing about a device).
		start_agent "$dead_url" false
		"$bc" lines -n "$n" -size "$PAYLOAD" -tag e >"$work/drain.txt"
		t0=$(now_ns); pub_lines bench/drain/emu "$work/drain.txt"; t1=$(now_ns)
		[ "$(depth)" -eq "$n" ] || die "queue depth is not $n after the offline fill"
		fill_rate=$(rate "$n" "$t0" "$t1")
		settle >/dev/null
		read -r fill_app fill_disk < <(disk)
		stop_agent
		big_n=$n big_fill_rate=$fill_rate big_app=$fill_app big_disk=$fill_disk
		big_topic_len=$(printf %s bench/drain/emu | wc -c)
		big_done=true
		continue
	fi
	measure=false
	[ "$n" = "$BIG_N" ] && ! $big_done && measure=true
	drain_agent "$n" "$rm" "$path" "$measure"
	drain_bare "$n" "$rm" "$path"
	drained["$n $rm $path"]=$drain_rate
	[ "$path" = lo ] || notes+=("proxy check, $(group "$n") at window $rm: the bare publisher's window / rate = $(awk -v w="$rm" -v r="$bare_rate" 'BEGIN { printf "%.1f", w / r * 1000 }') ms per round trip (the proxy adds 2 × $DELAY)")
	row "drain of a $(group "$n") backlog, Receive Maximum $rm, $(pathname "$path")" "$(group "$drain_rate") msg/s" \
		"bare paho.golang QoS 1 publisher, window $rm" "$(group "$bare_rate") msg/s" "$(ratio "$drain_rate" "$bare_rate")"
	if [ "$n" = "$BIG_N" ] && ! $big_done; then
		big_done=true
		big_n=$n big_fill_rate=$fill_rate big_app=$fill_app big_disk=$fill_disk
		big_after_app=$after_app big_after_disk=$after_disk big_rss=$drain_rss
		big_wear=$(div $((fill_wb + drain_wb)) "$n")
		big_topic_len=$(printf %s "bench/drain/$rm-$path-$n" | wc -c)
	fi
done
if ! $emulated; then
	for rm in 20 100; do
		s=${drained["$SMALL_N $rm lo"]:-}
		b=${drained["$BIG_N $rm lo"]:-}
		[ -n "$s" ] && [ -n "$b" ] && [ "$BIG_N" != "$SMALL_N" ] &&
			row "drain flatness, Receive Maximum $rm, loopback: $(group "$BIG_N") vs $(group "$SMALL_N") queued" "$(group "$b") msg/s" \
				"edge-agent, $(group "$SMALL_N") queued" "$(group "$s") msg/s" "$(ratio "$b" "$s")"
	done
	row "RssAnon peak while draining $(group "$big_n") (Receive Maximum 20)" "$(mib $((big_rss * 1024)))" "target" "16.0 MiB" \
		"$(ratio "$big_rss" $((16 * 1024)))"
	notes+=("drain: a fresh queue filled offline (agent on a closed port), agent restarted on the broker; rate = N / (agent connected (status since, its CONNACK) → mosquitto_sub has all; the queue's depth reaches 0 up to its removal delay later). barepub: N payloads in memory, W workers with blocking QoS 1 publishes, W = the broker's Receive Maximum = the agent's window (broker.max_inflight = 100); rate = N / (CONNACK → last PUBACK and mosquitto_sub has all). Same observers for both: the checker's wait runs during each (10 ms polls of mosquitto_sub's output), the agent is not asked GET /v1/status during its drain (RssAnon is read from /proc/<pid>/status by the bench). Proxy: internal/netproxy, TCP_NODELAY both ways, each chunk written $DELAY after it was read (pipelined). Targets ≥ 0.9× bare, flat within 20 %, RssAnon ≤ 16 MiB at 1M")
fi

# ---- 3. the queue file ---------------------------------------------------------------------
raw_big=$((big_n * (big_topic_len + PAYLOAD)))
row "queue file at a $(group "$big_n") backlog × $PAYLOAD B (apparent size)" "$(mib "$big_app")" "raw topic + payload" \
	"$(mib "$raw_big")" "$(ratio "$big_app" "$raw_big")"
row "queue file at a $(group "$big_n") backlog (on disk, st_blocks)" "$(mib "$big_disk")" "raw topic + payload" \
	"$(mib "$raw_big")" "$(ratio "$big_disk" "$raw_big")"
if ! $emulated; then
	row "queue file after the $(group "$big_n") backlog drained (apparent / on disk)" "$(mib "$big_after_app") / $(mib "$big_after_disk")" \
		"the file at the backlog (on disk)" "$(mib "$big_disk")" "$(ratio "$big_after_disk" "$big_disk")"
	row "bytes written per message, $(group "$big_n") backlog filled offline (NDJSON) and drained" "$(kib "$big_wear")" \
		"raw topic + payload" "$((big_topic_len + PAYLOAD)) B" "$(ratio "$big_wear" $((big_topic_len + PAYLOAD)))"
fi
notes+=("queue file: du of state_dir (apparent bytes, and st_blocks × 512 on disk) after the offline fill settled, and up to $SHRINK_WAIT s after the drain; target ≤ 1.5× raw at 1,000,000, space given back after a drain")

# ---- 5. online: pub -l vs a Mosquitto bridge -----------------------------------------------
if ! $emulated; then
	say "5. online: $(group "$ONLINE_N") messages via pub -l to the remote (Receive Maximum 20, loopback)"
	start_agent "$(url 20 lo)" true
	"$bc" lines -n "$ONLINE_N" -size "$PAYLOAD" -tag on >"$work/online.txt"
	t0=$(now_ns)
	pub_lines bench/online/agent "$work/online.txt"
	wait_all sub20 bench/online/agent "$ONLINE_N" 0 600 agent
	online_agent=$(secs "$t0" "$all_ns")
	stop_agent

	say "5. anchor: mosquitto_pub -> persistent local Mosquitto -> bridge (MQTT over TCP) -> the remote"
	start_broker mlocal "persistence true" "persistence_location $work/mlocal/" \
		"listener $tlocal 127.0.0.1" "" "connection bench-bridge" "address 127.0.0.1:$t20" \
		"topic bench/bridge/# out 1" "cleansession false" "remote_clientid bench-bridge-$$"
	ok=false
	for i in $(seq 100); do
		mosquitto_pub -h 127.0.0.1 -p "$tlocal" -q 1 -t bench/bridge/probe -m "probe-$i" 2>/dev/null || true
		sleep 0.1
		if grep -q '^bench/bridge/probe ' "$work/sub20.out"; then ok=true; break; fi
	done
	$ok || die "the Mosquitto bridge did not carry a probe to the remote within 10 s"
	"$bc" lines -n "$ONLINE_N" -size "$PAYLOAD" -tag br >"$work/bridge.txt"
	t0=$(now_ns)
	timeout 600 mosquitto_pub -h 127.0.0.1 -p "$tlocal" -q 1 -t bench/bridge/run -l <"$work/bridge.txt" 2>"$work/pub.err" ||
		die "mosquitto_pub -l to the bridge's local broker failed: $(cat "$work/pub.err")"
	wait_all sub20 bench/bridge/run "$ONLINE_N" 0 600
	online_bridge=$(secs "$t0" "$all_ns")
	row "$(group "$ONLINE_N") messages via pub -l until all are at the remote subscriber" "$online_agent s" \
		"Mosquitto bridge (not durable)" "$online_bridge s" "$(ratio "$online_agent" "$online_bridge")"
	notes+=("online: time from the start of edge-agent pub -l (agent connected to the remote over WebSocket) / mosquitto_pub -q 1 -l (to a local Mosquitto with persistence, bridged over MQTT/TCP, QoS 1, cleansession false) until mosquitto_sub on the remote has all; target ≤ 1.0×")
fi

# ---- 6. keep: ingest, latency, binary size -------------------------------------------------
row "durable ingest, NDJSON batches of 1,000, broker down ($(group "$big_n") × $PAYLOAD B)" "$(group "$big_fill_rate") msg/s" \
	"target" "50,000 msg/s" "$(ratio "$big_fill_rate" 50000)"
row "durable ingest, NDJSON batches of 1,000, broker up, sending meanwhile ($(group "$ND_N"))" "$(group "$nd_rate") msg/s" "target" "50,000 msg/s" \
	"$(ratio "$nd_rate" 50000)"
if ! $emulated; then
	row "one request to PUBACK, p50 (wait=delivered, $LAT_N sequential)" "$lat_p50_ms ms" "target" "2 ms" "$(ratio "$lat_p50_ms" 2)"
	row "one request to PUBACK, p99 (max $lat_max_ms ms)" "$lat_p99_ms ms" "target" "10 ms" "$(ratio "$lat_p99_ms" 10)"
fi
for t in arm64 armv6; do
	s=$(stat -c %s "$work/dist/edge-agent-linux-$t")
	row "binary, linux/$t, stripped" "$(awk -v s="$s" 'BEGIN { printf "%.2f MB", s / 1e6 }')" "target" "9.00 MB" "$(ratio "$s" 9000000)"
done

# ---- the table -----------------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
echo
echo "edge-agent $VERSION bench, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "host: $(uname -m), $(nproc) CPUs ($cpu), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), temp dir on $fs; $("$mosq" -h 2>/dev/null | head -n1 | sed 's/ (build.*//'); $(sqlite3 --version | cut -d' ' -f1 | sed 's/^/SQLite /')"
if $emulated; then
	echo "agent: linux/$target binary EMULATED under $qemu on $(uname -m) -- not real-device speed; CLI native"
else
	echo "agent: linux/$target, native; BIG_N=$BIG_N, SMALL_N=$SMALL_N, payload $PAYLOAD B"
fi
echo
echo "| figure | edge-agent | anchor | anchor value | ratio |"
echo "|---|---|---|---|---|"
for r in "${rows[@]}"; do
	IFS='|' read -r f a an av ra <<<"$r"
	echo "| $f | $a | $an | $av | $ra |"
done
echo
for n in "${notes[@]}"; do echo "- $n"; done
