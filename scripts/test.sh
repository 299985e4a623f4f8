#!/usr/bin/env bash
# The test command (README "Quick start": make test; .ci/run runs it too).
# Installs Mosquitto when missing and running as root, then gofmt, go vet and the
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

say "edge-agent tests: $(go version)"

say "checking for mosquitto, mosquitto_sub, mosquitto_pub (real brokers are used by the tests)"
if ! have_mosquitto; then
	if [ "$(id -u)" -ne 0 ]; then
		die "Mosquitto is not installed and this is not root. Run:
    sudo env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update && apt-get install -y mosquitto mosquitto-clients'
then run this script again."
	fi
	command -v apt-get >/dev/null || die "Mosquitto is missing and apt-get is not available: install the mosquitto broker and clients (2.0+, with websockets) by hand."
	say "installing mosquitto and mosquitto-clients with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y mosquitto mosquitto-clients
	have_mosquitto || die "mosquitto, mosquitto_sub or mosquitto_pub still missing after apt-get install"
fi
say "checking for qemu-arm-static (the gateways are 32-bit ARM: the core packages are tested there too)"
if ! command -v qemu-arm-static >/dev/null; then
	if [ "$(id -u)" -ne 0 ]; then
		die "qemu-arm-static is not installed and this is not root. Run:
    sudo env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update && apt-get install -y qemu-user-static'
then run this script again."
	fi
	say "installing qemu-user-static with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y qemu-user-static
	command -v qemu-arm-static >/dev/null || die "qemu-arm-static still missing after apt-get install qemu-user-static"
fi
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
echo "    $("$mosq" -h 2>/dev/null | head -n1 || true) ($mosq)"

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
	[ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null ||
		die "missing ${missing[*]}: as root, run apt-get update && apt-get install -y ${missing[*]}; then run this script again."
	say "installing ${missing[*]} with apt-get"
	DEBIAN_FRONTEND=noninteractive apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
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
say "GOARCH=arm GOARM=6 go test ./queue ./agent ./transport ./config (under qemu-arm-static)"
QUEUE_TEST_CHILD_EXEC=qemu-arm-static AGENT_TEST_CHILD_EXEC=qemu-arm-static GOARCH=arm GOARM=6 \
	go test -count=1 -timeout 20m -tags "$GO_TAGS" -exec qemu-arm-static ./queue/ ./agent/ ./transport/ ./config/

say "all tests passed"
