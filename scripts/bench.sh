#!/usr/bin/env bash
# Whole-system figures for edge-agent, measured on this machine (make bench).
#
# Runs the real static agent binary against a real Mosquitto (WebSocket listener on a free
# loopback port) with mosquitto_sub as the checker, and prints a short table: accept rate with the
# broker up and down, concurrent producers, drain rate of an offline backlog, publish-to-PUBACK
# latency, the agent's memory and queue file, and stripped binary sizes. Prints only; writes
# nothing into the repository. Every message is checked to arrive; any failure exits non-zero.
#
#   scripts/bench.sh                  native run (about 30 s on 2 cores, builds included when cached)
#   ARCH=armv6 scripts/bench.sh       the armv6 binary under qemu-arm-static (emulated figures 1, 5)
#   scripts/bench.sh --arch armv7     same as ARCH=armv7 (armv6, armv7, arm64 are emulated)
#
# Environment: N (messages for figures 1 and 3; default 50000 native, 5000 emulated), REPEAT (runs
# of figures 1a and 2, median printed; default 3),
# BENCH_DIR (where the temp dir goes; default $TMPDIR or /tmp: it should be a real disk, fsync
# on tmpfs costs nothing), VERSION (stamped into the binaries).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ARCH=${ARCH:-}
while [ $# -gt 0 ]; do
	case "$1" in
	--arch) ARCH=${2:?--arch needs a value: armv6, armv7, arm64 or amd64}; shift 2 ;;
	--arch=*) ARCH=${1#--arch=}; shift ;;
	-h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench: unknown argument $1 (use --arch ARCH)" >&2; exit 2 ;;
	esac
done

PAYLOAD=64         # bytes per message
CONC=8             # concurrent producers (figure 2)
CONC_N=5000        # messages per producer
LAT_N=1000         # sequential wait=delivered publishes (figure 4)
REPEAT=${REPEAT:-3} # runs of figures 1a and 2 (median reported)
STEP_TIMEOUT=120   # seconds, bound on each step
DRAIN_TIMEOUT=200  # seconds: the agent's reconnect backoff is capped at 2 min
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}

say() { printf '==> %s\n' "$*" >&2; }

work=""
broker_pid="" agent_pid="" sub_pid=""
die() {
	printf '\nbench FAILED: %s\n' "$*" >&2
	if [ -n "$work" ]; then
		if grep -q '^panic\|panic serving' "$work/agent.log" 2>/dev/null; then
			printf -- '--- agent.log: first panic ---\n' >&2
			grep -m1 -A1 '^panic\|panic serving' "$work/agent.log" >&2
		fi
		for f in agent.log mosquitto.log mosquitto.out sub.err; do
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
if $emulated; then N=${N:-5000}; else N=${N:-50000}; fi
[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "N=$N is not a positive number"
[[ "$REPEAT" =~ ^[1-9]$ ]] || die "REPEAT=$REPEAT: use 1 to 9"

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
if $emulated && ! command -v "$qemu" >/dev/null; then
	need_root_install "$qemu" qemu-user-static
	command -v "$qemu" >/dev/null || die "$qemu still missing after installing qemu-user-static"
fi
command -v timeout >/dev/null || die "timeout (coreutils) is missing"

work=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/edge-agent-bench.XXXXXX")
cleanup() {
	local p
	for p in $sub_pid $agent_pid $broker_pid; do kill "$p" 2>/dev/null || true; done
	for p in $sub_pid $agent_pid $broker_pid; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ns() { date +%s%N; }
# rate COUNT START_NS END_NS → messages per second, rounded
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { d = (b - a) / 1e9; if (d <= 0) d = 1e-9; printf "%.0f", n / d }'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
group() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }

# ---- build ---------------------------------------------------------------------------------
bin="$work/bin"
mkdir -p "$bin" "$work/dist"
ldflags="-s -w -X main.version=$VERSION"
say "building edge-agent ($VERSION, CGO_ENABLED=0, stripped) for amd64, arm64, armv7, armv6 and cmd/benchclient"
build() { # name goarch goarm
	local vars=(CGO_ENABLED=0 GOOS=linux GOARCH="$2")
	[ -z "$3" ] || vars+=(GOARM="$3")
	env "${vars[@]}" go build -trimpath -ldflags "$ldflags" -o "$work/dist/edge-agent-linux-$1" ./cmd/agent ||
		die "building edge-agent for $1 failed"
}
build amd64 amd64 ""
build arm64 arm64 ""
build armv7 arm 7
build armv6 arm 6
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin/edge-agent" ./cmd/agent || die "building the native edge-agent CLI failed"
go build -o "$bin/benchclient" ./cmd/benchclient || die "building cmd/benchclient failed"
bc="$bin/benchclient"
ea() { timeout "$STEP_TIMEOUT" "$bin/edge-agent" "$@"; }
agent_bin="$work/dist/edge-agent-linux-$target"
$emulated || agent_bin="$bin/edge-agent"

# ---- Mosquitto and the checker subscriber --------------------------------------------------
read -r tcp_port ws_port < <("$bc" ports 2) || die "no free loopback ports"
mkdir -p "$work/mosq"
{
	echo "per_listener_settings false"
	echo "allow_anonymous true"
	echo "persistence true" # the checker's session (and what it has not yet received) survives the broker restart
	echo "persistence_location $work/mosq/"
	echo "autosave_interval 0"
	[ "$(id -u)" -ne 0 ] || echo "user root" # else it switches to user mosquitto, who cannot write the 0700 temp dir
	echo "log_dest file $work/mosquitto.log"
	echo "log_type error"
	echo "log_type warning"
	echo "log_type notice"
	echo "log_type information"
	echo "max_inflight_messages 100"
	echo "max_queued_messages 1000000"
	echo "max_queued_bytes 0"
	echo "listener $tcp_port 127.0.0.1"
	echo "listener $ws_port 127.0.0.1"
	echo "protocol websockets"
} >"$work/mosquitto.conf"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start_broker() {
	local from
	from=$(stat -c %s "$work/mosquitto.log" 2>/dev/null || echo 0)
	"$mosq" -c "$work/mosquitto.conf" >>"$work/mosquitto.out" 2>&1 &
	broker_pid=$!
	for _ in $(seq 200); do
		kill -0 "$broker_pid" 2>/dev/null || die "mosquitto exited at start"
		if tail -c +"$((from + 1))" "$work/mosquitto.log" 2>/dev/null | grep -q ' running$' &&
			port_open "$tcp_port" && port_open "$ws_port"; then
			return 0
		fi
		sleep 0.05
	done
	die "mosquitto did not open 127.0.0.1:$tcp_port and :$ws_port within 10 s"
}
stop_broker() {
	kill "$broker_pid" 2>/dev/null || true
	wait "$broker_pid" 2>/dev/null || true
	broker_pid=""
}

say "starting mosquitto ($("$mosq" -h 2>/dev/null | head -n1 | sed 's/^mosquitto //')): ws://127.0.0.1:$ws_port/mqtt, checker on 127.0.0.1:$tcp_port"
start_broker
# The checker: a persistent session (-c), QoS 1, one line per message "topic payload".
mosquitto_sub -h 127.0.0.1 -p "$tcp_port" -V mqttv311 -q 1 -c -i "bench-checker-$$" -t 'bench/#' -F '%t %p' \
	>"$work/sub.out" 2>"$work/sub.err" &
sub_pid=$!
ready=false
for i in $(seq 100); do
	mosquitto_pub -h 127.0.0.1 -p "$tcp_port" -q 1 -t bench/probe -m "probe-$i" 2>/dev/null || true
	sleep 0.1
	if grep -q '^bench/probe ' "$work/sub.out"; then ready=true; break; fi
done
$ready || die "the checker mosquitto_sub did not receive a probe within 10 s"

# ---- the agent -----------------------------------------------------------------------------
cat >"$work/agent.toml" <<EOF
client_id = "bench-agent"
state_dir = "$work/state"
socket    = "$work/agent.sock"

[broker]
provider  = "mqtt"
url       = "ws://127.0.0.1:$ws_port/mqtt"
keepalive = "10s"

[queue]
max_bytes = "256MiB"
EOF
export EDGE_AGENT_SOCKET="$work/agent.sock"
state_is() { ea status --json 2>/dev/null | grep -q "\"state\":\"$1\""; }
depth() { ea status --json | sed -n 's/.*"depth":\([0-9]*\).*/\1/p'; }
field() { ea status --json | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

if $emulated; then
	say "starting the $target agent under $qemu (emulated)"
	"$qemu" "$agent_bin" run --config "$work/agent.toml" >"$work/agent.log" 2>&1 &
else
	say "starting the agent"
	"$agent_bin" run --config "$work/agent.toml" >"$work/agent.log" 2>&1 &
fi
agent_pid=$!
for _ in $(seq 300); do
	state_is connected && break
	kill -0 "$agent_pid" 2>/dev/null || die "the agent exited"
	grep -q 'panic' "$work/agent.log" && break
	sleep 0.1
done
if ! state_is connected; then
	st=$(ea status --json 2>&1) || die "the agent's local API does not answer GET /v1/status: $st
(a panic in the agent log below, e.g. 'unaligned 64-bit atomic operation' on 32-bit ARM, is an agent bug)"
	die "the agent did not connect to ws://127.0.0.1:$ws_port/mqtt within 30 s: $st"
fi
recv_max=$(field receive_maximum)

# wait_all TOPIC COUNT [AFTER_NS [TIMEOUT]]: waits until the checker has COUNT distinct payloads on
# TOPIC and the queue is empty, then sets connected_ns, depth0_ns, all_ns, received, dups.
wait_all() {
	local out
	out=$("$bc" wait -socket "$work/agent.sock" -checker "$work/sub.out" -topic "$1" -n "$2" \
		-after "${3:-0}" -timeout "${4:-$STEP_TIMEOUT}s") || die "messages missing on $1 (see above)"
	eval "$out"
}
# pub_lines TOPIC FILE: edge-agent pub -l, QoS 1, must exit 0
pub_lines() {
	ea pub -t "$1" -q 1 -l <"$2" 2>"$work/pub.err" || die "edge-agent pub -l to $1 failed: $(cat "$work/pub.err")"
}

declare -A rows # key → "figure|result|method", printed in figure order
row() { rows[$1]="$2|$3|$4"; }

# summary RATE… → "median msg/s (min–max, R runs)"
summary() {
	local sorted
	mapfile -t sorted < <(printf '%s\n' "$@" | sort -n)
	if [ ${#sorted[@]} -eq 1 ]; then
		echo "$(group "${sorted[0]}") msg/s (1 run)"
	else
		echo "$(group "${sorted[$((${#sorted[@]} / 2))]}") msg/s (${#sorted[@]} runs: $(group "${sorted[0]}")-$(group "${sorted[-1]}"))"
	fi
}

# ---- 1a. accept rate, broker reachable -----------------------------------------------------
rates=()
for r in $(seq "$REPEAT"); do
	"$bc" lines -n "$N" -size "$PAYLOAD" -tag "up$r" >"$work/up.txt"
	say "1. accept: $N messages with the broker reachable (run $r of $REPEAT)"
	t0=$(now_ns)
	pub_lines "bench/accept/$r" "$work/up.txt"
	t1=$(now_ns)
	wait_all "bench/accept/$r" "$N"
	[ "$dups" -eq 0 ] || say "   note: the checker saw $dups duplicates (at least once)"
	rates+=("$(rate "$N" "$t0" "$t1")")
done
row 1a "1a accept, broker up" "$(summary "${rates[@]}")" \
	"edge-agent pub -q 1 -l < $(group "$N") lines of $PAYLOAD B; wall time until pub exits 0 (all fsync'd); median; each run checked at mosquitto_sub"

if ! $emulated; then
	# ---- 2. concurrent producers -----------------------------------------------------------
	total=$((CONC * CONC_N))
	rates=()
	for r in $(seq "$REPEAT"); do
		say "2. concurrent: $CONC producers x $CONC_N messages (run $r of $REPEAT)"
		for i in $(seq "$CONC"); do "$bc" lines -n "$CONC_N" -size "$PAYLOAD" -tag "c$i" >"$work/conc$i.txt"; done
		pids=()
		t0=$(now_ns)
		for i in $(seq "$CONC"); do
			ea pub -t "bench/conc/$r" -q 1 -l <"$work/conc$i.txt" 2>"$work/conc$i.err" &
			pids+=($!)
		done
		failed=0
		for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
		t1=$(now_ns)
		[ "$failed" -eq 0 ] || die "$failed of $CONC concurrent pub -l failed: $(cat "$work"/conc*.err)"
		wait_all "bench/conc/$r" "$total"
		rates+=("$(rate "$total" "$t0" "$t1")")
	done
	row 2 "2  accept, $CONC producers" "$(summary "${rates[@]}")" \
		"$CONC concurrent edge-agent pub -l of $(group "$CONC_N") lines ($(group "$total") in all), broker up; until the last exits 0 (group commit); median"

	# ---- 4. latency (broker up; run before the broker is stopped) --------------------------
	say "4. latency: $LAT_N sequential publishes with wait=delivered"
	lat=$("$bc" latency -socket "$work/agent.sock" -n "$LAT_N" -topic bench/latency -size "$PAYLOAD" -timeout "${STEP_TIMEOUT}s") ||
		die "the latency run failed"
	wait_all bench/latency "$LAT_N"
	eval "$(tr ' ' '\n' <<<"$lat" | sed -n 's/^\(p50_ms\|p99_ms\|max_ms\)=/lat_\1=/p')"
	row 4 "4  latency to PUBACK" "p50 $lat_p50_ms ms, p99 $lat_p99_ms ms (max $lat_max_ms)" \
		"$LAT_N sequential POST /v1/publish?qos=1&wait=delivered (Unix socket -> fsync -> broker PUBACK -> 200), $PAYLOAD B"
fi

# ---- 1b. accept rate, broker down (pure store rate) ----------------------------------------
say "1. accept: $N messages with the broker down"
stop_broker
for _ in $(seq 100); do state_is connected || break; sleep 0.1; done
state_is connected && die "the agent still says connected 10 s after the broker stopped"
"$bc" lines -n "$N" -size "$PAYLOAD" -tag down >"$work/down.txt"
t0=$(now_ns)
pub_lines bench/drain "$work/down.txt"
t1=$(now_ns)
d=$(depth)
[ "$d" -eq "$N" ] || die "queue depth is $d after $N messages were accepted offline, want $N"
row 1b "1b accept, broker down" "$(group "$(rate "$N" "$t0" "$t1")") msg/s (1 run, $(secs "$t0" "$t1") s)" \
	"as 1a with mosquitto stopped: the queue alone (bbolt, one fsync per pub batch of 1000); depth checked; one run$($emulated || echo " (it is figure 3's backlog)")"

# ---- 3. drain ------------------------------------------------------------------------------
if ! $emulated; then
	say "3. drain: $N queued messages, starting the broker"
	tb=$(now_ns)
	start_broker
	wait_all bench/drain "$N" "$tb" "$DRAIN_TIMEOUT"
	[ "$connected_ns" -gt 0 ] || die "could not tell when the agent reconnected (status since)"
	[ "$dups" -eq 0 ] || say "   note: the checker saw $dups duplicates (at least once)"
	end=$depth0_ns
	[ "$all_ns" -gt "$end" ] && end=$all_ns
	row 3 "3  drain after outage" "$(group "$(rate "$N" "$connected_ns" "$end")") msg/s ($(secs "$connected_ns" "$end") s)" \
		"$(group "$N") queued offline; agent reconnect (status since) -> depth 0 (+$(secs "$connected_ns" "$depth0_ns") s) and mosquitto_sub has all (+$(secs "$connected_ns" "$all_ns") s)"
	row 3r "   (reconnect wait)" "$(secs "$tb" "$connected_ns") s" \
		"broker start -> agent connected: the agent's jittered reconnect backoff, not drain speed"
fi

# ---- 5. memory and queue file --------------------------------------------------------------
kill -0 "$agent_pid" 2>/dev/null || die "the agent died during the runs"
hwm=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$agent_pid/status")
rss=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$agent_pid/status")
qsize=$(stat -c %s "$work/state/queue.db" 2>/dev/null) || die "no queue file at state_dir/queue.db"
qdepth=$(depth)
what="agent"
$emulated && what="$qemu process (emulator + agent)"
row 5 "5  memory" "VmHWM $hwm MiB, VmRSS $rss MiB" "/proc/<pid>/status of the $what after all runs"
row 5q "   queue file" "$(awk -v s="$qsize" 'BEGIN { printf "%.1f", s / 1048576 }') MiB (depth $qdepth)" \
	"size of state_dir/queue.db after the runs (bbolt keeps freed pages for reuse; it does not shrink)"

# ---- 6. binary sizes -----------------------------------------------------------------------
sizes=""
for t in amd64 arm64 armv7 armv6; do
	sizes+="$t $(awk -v s="$(stat -c %s "$work/dist/edge-agent-linux-$t")" 'BEGIN { printf "%.1f", s / 1048576 }'), "
done
row 6 "6  binary size (MiB)" "${sizes%, }" "go build -trimpath -ldflags '-s -w', CGO_ENABLED=0, linux"

# ---- the table -----------------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
fs=$(df -PT "$work" | awk 'NR == 2 { print $2 }')
echo
echo "edge-agent $VERSION bench, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "host: $(uname -m), $(nproc) CPUs ($cpu), temp dir on $fs; $("$mosq" -h 2>/dev/null | head -n1 | sed 's/ (build.*//'), receive maximum $recv_max"
if $emulated; then
	echo "agent: linux/$target binary EMULATED under $qemu on $(uname -m) -- not real-device speed; CLI native"
else
	echo "agent: linux/$target, native"
fi
[ "$fs" = tmpfs ] && echo "WARNING: the temp dir is on tmpfs, fsync costs nothing there; set BENCH_DIR to a disk"
echo
printf '%-24s %-44s %s\n' "figure" "result" "method"
for k in 1a 1b 2 3 3r 4 5 5q 6; do
	[ -n "${rows[$k]:-}" ] || continue
	IFS='|' read -r f v m <<<"${rows[$k]}"
	printf '%-24s %-44s %s\n' "$f" "$v" "$m"
done
