#!/usr/bin/env bash
# The one place that computes what a build is stamped with. Used by the Makefile, build.sh and deb.sh.
#
#   scripts/version.sh            KEY=value lines: VERSION, COMMIT, DATE, DEB_VERSION
#   scripts/version.sh --ldflags  the go build -ldflags value: -s -w -X main.version=… -X main.commit=… -X main.date=…
#   scripts/version.sh --deb      the Debian package version only
#
# VERSION: $VERSION if set (make deb VERSION=1.2.3), else git describe --tags --always --dirty, else "dev".
# COMMIT:  the full commit hash, else "unknown". DATE: $SOURCE_DATE_EPOCH if set, else the commit's time
# (so a rebuild of one commit is stamped alike), else now; RFC 3339 in UTC.
# DEB_VERSION must start with a digit (deb-version(7)):
#   v1.2.3 or 1.2.3               -> 1.2.3
#   v1.2.3-4-gabc1234             -> 1.2.3+git4.gabc1234     (sorts after 1.2.3)
#   v1.2.3-rc1                    -> 1.2.3~rc1               (sorts before 1.2.3)
#   no usable tag (abc1234, dev)  -> 0.0.0~git<YYYYmmddHHMMSS>.<short hash> (sorts before any release)
#   a dirty tree adds ".dirty".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

git_ok=false
git rev-parse --git-dir >/dev/null 2>&1 && git_ok=true

if [ -z "${VERSION:-}" ]; then
	VERSION=dev
	$git_ok && VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
fi
COMMIT=unknown
$git_ok && COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)

if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
	epoch=$SOURCE_DATE_EPOCH
elif $git_ok && epoch=$(git log -1 --format=%ct 2>/dev/null) && [ -n "$epoch" ]; then
	:
else
	epoch=$(date +%s)
fi
DATE=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

deb_version() {
	local v=${1#v} dirty= suffix=
	case $v in *-dirty) v=${v%-dirty} dirty=.dirty ;; esac
	if [[ $v =~ ^(.+)-([0-9]+)-g([0-9a-f]+)$ ]]; then # commits after a tag
		v=${BASH_REMATCH[1]} suffix=+git${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}
	fi
	[ "$COMMIT" != unknown ] && [ "${COMMIT#"$v"}" != "$COMMIT" ] && v=untagged # git describe --always: a bare hash
	v=${v//-/\~} # a pre-release (1.0.0-rc1) sorts before its release: 1.0.0~rc1
	if [[ $v =~ ^[0-9][0-9A-Za-z.+~]*$ ]]; then
		echo "$v$suffix$dirty"
	else
		local short=${COMMIT:0:7}
		[ "$COMMIT" = unknown ] && short=unknown
		echo "0.0.0~git$(date -u -d "@$epoch" +%Y%m%d%H%M%S).$short$dirty"
	fi
}
DEB_VERSION=$(deb_version "$VERSION")

case "${1:-}" in
--ldflags) echo "-s -w -X main.version=$VERSION -X main.commit=$COMMIT -X main.date=$DATE" ;;
--deb) echo "$DEB_VERSION" ;;
"") printf 'VERSION=%s\nCOMMIT=%s\nDATE=%s\nDEB_VERSION=%s\n' "$VERSION" "$COMMIT" "$DATE" "$DEB_VERSION" ;;
*) echo "usage: $0 [--ldflags | --deb]" >&2; exit 2 ;;
esac
