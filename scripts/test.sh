#!/usr/bin/env bash
# The test command (README "Quick start": make test; .ci/run runs it too).
# Installs Mosquitto, Node.js with the Aedes npm modules and RabbitMQ when missing and
# running as root, then gofmt, go vet and the
# whole suite under the race detector, then the core packages again as 32-bit ARM (armv6) binaries
# under qemu-arm-static (installed the same way). Tests start their own Mosquitto instances
# on free loopback ports; a system mosquitto service (which the Debian package may
# start on install) is neither needed nor used.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/build.env

say() { printf '\n==> %s\n' "$*"; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

have_mosquitto() {
	{ command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; } &&
		command -v mosquitto_sub >/dev/null && command -v mosquitto_pub >/dev/null
}

apt_install() { # apt_install WHAT PACKAGE...: install with apt-get as root, else say how
	if [ "$(id -u)" -ne 0 ]; then
		die "$1 is not installed and this is not root. Run:
    sudo env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update && apt-get install -y ${*:2}'
then run this script again."
	fi
	command -v apt-get >/dev/null || die "$1 is missing and apt-get is not available: install ${*:2} by hand."
	say "installing ${*:2} with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	[ -n "${apt_updated:-}" ] || { apt-get update; apt_updated=1; }
	# The tests start private brokers on free ports: keep the packages' system services (mosquitto,
	# rabbitmq-server) from starting at install, which in a container without an init system can fail
	# the install. policy-rc.d exit 101 is Debian's "action forbidden"; one already there is left alone.
	local policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy"
	fi
	local rc=0
	apt-get install -y "${@:2}" || rc=$?
	[ -z "$policy" ] || rm -f "$policy"
	[ "$rc" -eq 0 ] || die "apt-get install -y ${*:2} failed (exit $rc)"
}

say "edge-agent tests: $(go version)"

say "checking for mosquitto, mosquitto_sub, mosquitto_pub (real brokers are used by the tests)"
if ! have_mosquitto; then
	apt_install "Mosquitto (2.0+, with websockets)" mosquitto mosquitto-clients
	have_mosquitto || die "mosquitto, mosquitto_sub or mosquitto_pub still missing after apt-get install"
fi
say "checking for qemu-arm-static (the gateways are 32-bit ARM: the core packages are tested there too)"
if ! command -v qemu-arm-static >/dev/null; then
	apt_install "qemu-arm-static" qemu-user-static
	command -v qemu-arm-static >/dev/null || die "qemu-arm-static still missing after apt-get install qemu-user-static"
fi
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
echo "    $("$mosq" -h 2>/dev/null | head -n1 || true) ($mosq)"
# MQTT 3.1.1-only brokers (issue 10): Aedes 1.x on Node.js (internal/aedes) and Debian's
# RabbitMQ 3.10 with rabbitmq_web_mqtt (internal/rabbitmq). The tests start private
# instances; the rabbitmq-server system service is neither needed nor used.
say "checking for node and npm (the Aedes test broker runs on Node.js)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	apt_install "Node.js" nodejs npm
	command -v node >/dev/null && command -v npm >/dev/null || die "node or npm still missing after apt-get install nodejs npm"
fi
echo "    node $(node --version), npm $(npm --version)"
# Aedes 1.2 declares Node.js >= 20 but runs, and passes these tests, on Debian bookworm's Node.js 18
# (apt-get install nodejs); npm ci only warns (EBADENGINE). Older than 18 is refused.
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] || die "the Aedes test broker needs Node.js 18 or later; node --version says $(node --version). Install a newer nodejs, then run this script again."
say "npm ci in internal/aedes (Aedes, pinned by internal/aedes/package-lock.json)"
# node_modules/.edge-agent-lock is the lock file the modules were installed from.
if ! cmp -s internal/aedes/package-lock.json internal/aedes/node_modules/.edge-agent-lock 2>/dev/null; then
	npm ci --no-audit --no-fund --prefix internal/aedes
	cp internal/aedes/package-lock.json internal/aedes/node_modules/.edge-agent-lock
fi
say "checking for rabbitmq-server (RabbitMQ 3.10, MQTT 3.1.1 only)"
if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
	apt_install "rabbitmq-server" rabbitmq-server
	[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || die "rabbitmq-server still missing after apt-get install rabbitmq-server"
fi

# The packaging tests (./packaging) build the .deb files with dpkg-deb, install them into a throw-away
# root with dpkg --root, create the user with systemd-sysusers or useradd, run the armhf binary under
# qemu-arm-static, and check the unit with systemd-analyze verify and security. They fail, never skip,
# when a tool is missing, so it is installed here.
say "checking for dpkg-deb, systemd-analyze, useradd (the packaging and systemd tests)"
missing=()
command -v dpkg-deb >/dev/null || missing+=(dpkg)
command -v systemd-analyze >/dev/null && command -v systemctl >/dev/null || missing+=(systemd)
command -v useradd >/dev/null || missing+=(passwd)
if [ ${#missing[@]} -gt 0 ]; then
	apt_install "${missing[*]}" "${missing[@]}"
	command -v dpkg-deb >/dev/null && command -v systemd-analyze >/dev/null && command -v useradd >/dev/null ||
		die "dpkg-deb, systemd-analyze or useradd still missing after apt-get install ${missing[*]}"
fi
echo "    $(dpkg-deb --version | head -n1 | sed 's/\.$//'); systemd $(systemd-analyze --version | head -n1 | awk '{print $2}')"

say "gofmt -l"
unformatted=$(find . -name '*.go' -not -path './vendor/*' -not -path '*/testdata/*' -not -path './.git/*' -print0 | xargs -0 -r gofmt -l)
if [ -n "$unformatted" ]; then
	die "these files need gofmt -w:
$unformatted"
fi

say "go vet ./..."
go vet ./...

say "go test -race -count=1 -timeout 20m -tags $GO_TAGS ./..."
go test -race -count=1 -timeout 20m -tags "$GO_TAGS" ./...

# 32-bit ARM (Raspberry Pi Zero/1: armv6) catches what amd64 cannot, such as unaligned 64-bit atomics.
# The tests run as ARM binaries under user-mode emulation; the queue's crash test re-executes itself
# through the emulator too.
#
# qemu-user can deadlock a forked child of a multi-threaded program before it execs (both of the
# child's threads wait on a futex: qemu's own locks, copied mid-use by the fork); the test that
# started the child (a broker, a re-executed test binary) then waits until the timeout. That is the
# emulator's fault, not the code's: a package that fails by timing out — and only that way — is run
# once more, saying so. Any other failure, or a second timeout, fails the run.
say "GOARCH=arm GOARM=6 go test ./queue ./agent ./transport ./config (under qemu-arm-static)"
arm_test() {
	QUEUE_TEST_CHILD_EXEC=qemu-arm-static AGENT_TEST_CHILD_EXEC=qemu-arm-static GOARCH=arm GOARM=6 \
		go test -count=1 -timeout 10m -tags "$GO_TAGS" -exec qemu-arm-static "$1"
}
for pkg in ./queue/ ./agent/ ./transport/ ./config/; do
	out=$(mktemp)
	if arm_test "$pkg" 2>&1 | tee "$out"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
		rm -f "$out"
		continue
	fi
	if grep -q '^panic: test timed out' "$out"; then
		say "$pkg timed out under qemu-arm-static (see above); running it once more: a forked child can hang in the emulator"
		rm -f "$out"
		arm_test "$pkg" || die "$pkg failed under qemu-arm-static twice"
		continue
	fi
	rm -f "$out"
	die "$pkg failed under qemu-arm-static"
done

say "all tests passed"
