#!/bin/sh
# Installs a bare edge-agent binary the way the .deb does, for systems without dpkg (or an image
# build): the binary, the unit, the sysusers.d file, the example config (only if none is there), the
# user, and the service enabled and (re)started where systemd runs. Idempotent: running it again
# installs the same files and keeps the config.
#
#   scripts/install.sh [--binary FILE] [--prefix DIR] [--root DIR]     install or upgrade
#   scripts/install.sh --uninstall [--prefix DIR] [--root DIR]         remove; keep config and queue
#   scripts/install.sh --purge [--prefix DIR] [--root DIR]             remove with config and queue
#
# --binary: the edge-agent binary (default: dist/edge-agent-linux-<this machine's arch>, as
#           scripts/build.sh names them). --prefix: default /usr/local (binary in PREFIX/bin).
# --root:   act on a throw-away root instead of this system (users go into ROOT/etc/passwd, the unit is
#           enabled offline, nothing is started).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
ROOT=
PREFIX=/usr/local
BINARY=
MODE=install

usage() {
	sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
	exit "$1"
}

while [ $# -gt 0 ]; do
	case $1 in
	--root) ROOT=${2:?--root needs a directory} && shift ;;
	--root=*) ROOT=${1#*=} ;;
	--prefix) PREFIX=${2:?--prefix needs a directory} && shift ;;
	--prefix=*) PREFIX=${1#*=} ;;
	--binary) BINARY=${2:?--binary needs a file} && shift ;;
	--binary=*) BINARY=${1#*=} ;;
	--uninstall) MODE=uninstall ;;
	--purge) MODE=purge ;;
	-h | --help) usage 0 ;;
	*)
		echo "install.sh: unknown argument $1" >&2
		usage 2 >&2
		;;
	esac
	shift
done
if [ -n "$ROOT" ]; then
	[ -d "$ROOT" ] || { echo "install.sh: --root $ROOT is not a directory" >&2; exit 2; }
	ROOT=$(cd "$ROOT" && pwd)
	[ "$ROOT" != / ] || ROOT=
fi

. "$here/packaging/lib.sh"

BIN="$PREFIX/bin/edge-agent"
UNIT=/etc/systemd/system/edge-agent.service
SYSUSERS=/etc/sysusers.d/edge-agent.conf

if [ "$MODE" != install ]; then
	ea_stop
	[ -f "$ROOT$UNIT" ] && ea_disable
	rm -f "$ROOT$BIN" "$ROOT$UNIT" "$ROOT$SYSUSERS"
	ea_daemon_reload
	if [ "$MODE" = purge ]; then
		rm -f "$ROOT$EA_CONFIG"
		ea_purge_state
		ea_say "purged: binary, unit, config and queue removed (the user $EA_USER stays)"
	else
		ea_say "uninstalled: $EA_CONFIG and the queue in $EA_STATE are kept (--purge removes them)"
	fi
	exit 0
fi

if [ -z "$BINARY" ]; then
	case $(uname -m) in
	x86_64) BINARY=$here/dist/edge-agent-linux-amd64 ;;
	aarch64 | arm64) BINARY=$here/dist/edge-agent-linux-arm64 ;;
	armv7l) BINARY=$here/dist/edge-agent-linux-armv7 ;;
	armv6l) BINARY=$here/dist/edge-agent-linux-armv6 ;;
	*) echo "install.sh: no binary for $(uname -m): pass --binary FILE" >&2 && exit 2 ;;
	esac
fi
[ -f "$BINARY" ] || { echo "install.sh: $BINARY not found: run make cross, or pass --binary FILE" >&2; exit 2; }

upgrade=false
[ -f "$ROOT$BIN" ] && upgrade=true
install -D -m 0755 "$BINARY" "$ROOT$BIN"
install -d -m 0755 "$ROOT/etc/systemd/system" "$ROOT/etc/sysusers.d"
sed "s#^ExecStart=/usr/bin/edge-agent #ExecStart=$BIN #" "$here/systemd/edge-agent.service" >"$ROOT$UNIT.tmp"
chmod 0644 "$ROOT$UNIT.tmp"
mv "$ROOT$UNIT.tmp" "$ROOT$UNIT"
install -m 0644 "$here/systemd/sysusers.d/edge-agent.conf" "$ROOT$SYSUSERS"
ea_create_user
if [ ! -e "$ROOT$EA_CONFIG" ]; then
	install -D -m 0640 "$here/systemd/agent.toml.example" "$ROOT$EA_CONFIG"
	chown 0:0 "$ROOT$EA_CONFIG"
	ea_say "installed the example config $EA_CONFIG: edit it, then edge-agent check-config"
fi
ea_config_group
ea_enable
if $upgrade; then ea_start restart; else ea_start start; fi
ea_say "installed $BIN ($("$ROOT$BIN" version 2>/dev/null | head -n1 || echo "not runnable on this machine"))"
