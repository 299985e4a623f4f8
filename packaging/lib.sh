# Shell functions shared by the .deb maintainer scripts (scripts/deb.sh pastes this file into each
# in place of their marker line) and scripts/install.sh (sources it). POSIX sh: the maintainer scripts run under dash.
#
# ROOT is the root directory acted on: "" for this system, else a throw-away root (dpkg --root sets
# DPKG_ROOT for its maintainer scripts; install.sh --root sets it). With a ROOT nothing outside it is
# touched: users are added to ROOT/etc/passwd, units are enabled offline, and no service is started.

EA_USER=edge-agent
EA_CONFIG=/etc/edge-agent/agent.toml
EA_STATE=/var/lib/edge-agent
EA_UNIT=edge-agent.service

ea_say() { echo "edge-agent: $*"; }

# ea_systemd_running: this system (not a ROOT, not a chroot) is booted with systemd.
ea_systemd_running() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }

# ea_group_id prints the numeric id of the group edge-agent in ROOT's /etc/group: names are resolved
# there, never through this machine's user database.
ea_group_id() { awk -F: -v n="$EA_USER" '$1 == n { print $3 }' "$ROOT/etc/group" 2>/dev/null; }

# ea_create_user adds the system user and group edge-agent (home /var/lib/edge-agent, no login):
# systemd-sysusers with sysusers.d/edge-agent.conf where present, else useradd, else adduser.
ea_create_user() {
	if grep -q "^$EA_USER:" "$ROOT/etc/passwd" 2>/dev/null && [ -n "$(ea_group_id)" ]; then
		return 0
	fi
	if command -v systemd-sysusers >/dev/null 2>&1; then
		if [ -n "$ROOT" ]; then
			systemd-sysusers --root="$ROOT" edge-agent.conf
		else
			systemd-sysusers edge-agent.conf
		fi
	elif command -v useradd >/dev/null 2>&1; then
		set -- --system --user-group --home-dir "$EA_STATE" --no-create-home --shell /usr/sbin/nologin \
			--comment "edge-agent store-and-forward MQTT gateway" "$EA_USER"
		if [ -n "$ROOT" ]; then
			useradd --prefix "$ROOT" "$@"
		else
			useradd "$@"
		fi
	elif [ -z "$ROOT" ] && command -v adduser >/dev/null 2>&1; then
		adduser --system --group --home "$EA_STATE" --no-create-home --shell /usr/sbin/nologin "$EA_USER"
	else
		ea_say "cannot create the user $EA_USER: no systemd-sysusers, useradd or adduser" >&2
		return 1
	fi
}

# ea_config_group makes the config readable by the service and no one else (0640 root:edge-agent)
# while it still has the group it was unpacked with (root): an admin's own choice is kept.
ea_config_group() {
	f="$ROOT$EA_CONFIG"
	[ -f "$f" ] || return 0
	gid=$(ea_group_id)
	if [ -n "$gid" ] && [ "$(stat -c %g "$f")" = 0 ]; then
		chgrp "$gid" "$f"
		chmod 0640 "$f"
	fi
}

# ea_enable enables the unit (offline with a ROOT, or where systemd is not running, e.g. a chroot).
ea_enable() {
	command -v systemctl >/dev/null 2>&1 || { ea_say "no systemctl: enable $EA_UNIT yourself"; return 0; }
	if ea_systemd_running; then
		systemctl daemon-reload || true
		systemctl enable "$EA_UNIT" || true
	else
		systemctl --root="${ROOT:-/}" enable "$EA_UNIT" || true
	fi
}

# ea_disable removes the unit's enablement (before its file goes away).
ea_disable() {
	command -v systemctl >/dev/null 2>&1 || return 0
	if ea_systemd_running; then
		systemctl disable "$EA_UNIT" || true
	else
		systemctl --root="${ROOT:-/}" disable "$EA_UNIT" || true
	fi
}

# ea_start (re)starts the service where systemd runs; $1 = start or restart. A failure to start
# (a config still to be edited) does not fail the installation: systemctl status says why.
ea_start() {
	ea_systemd_running || return 0
	systemctl daemon-reload || true
	systemctl "$1" "$EA_UNIT" || ea_say "$EA_UNIT did not $1: see systemctl status $EA_UNIT, edge-agent check-config"
}

ea_stop() {
	ea_systemd_running || return 0
	systemctl stop "$EA_UNIT" || true
}

ea_daemon_reload() {
	ea_systemd_running || return 0
	systemctl daemon-reload || true
}

# ea_purge_state removes the queue, the Cognito identity id and the runtime directory. The user
# stays (Debian does not remove system users: files elsewhere may still be owned by its id).
ea_purge_state() {
	rm -rf "$ROOT$EA_STATE" "$ROOT/run/edge-agent"
	rmdir "$ROOT/etc/edge-agent" 2>/dev/null || true # kept if an admin left files there (a password file)
}
