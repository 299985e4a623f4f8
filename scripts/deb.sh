#!/usr/bin/env bash
# Builds dist/edge-agent_<version>_{armhf,arm64,amd64}.deb with dpkg-deb alone (make deb).
#
# Each package holds the static binary (/usr/bin/edge-agent), the unit
# (/usr/lib/systemd/system/edge-agent.service), the sysusers.d file, the example config as the
# conffile /etc/edge-agent/agent.toml, and the maintainer scripts of packaging/deb with
# packaging/lib.sh pasted in. armhf is built with GOARM=6: Raspberry Pi OS's armhf userland is ARMv6,
# so one package serves the Pi Zero/1 through the Pi 4. The version comes from scripts/version.sh.
#
# Environment: OUT (default dist), ARCHES (default "armhf arm64 amd64"), VERSION (see version.sh).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/build.env

command -v dpkg-deb >/dev/null || {
	echo "deb.sh: dpkg-deb is missing: apt-get install dpkg (it builds the packages; nothing is downloaded)" >&2
	exit 1
}

OUT=${OUT:-dist}
ARCHES=${ARCHES:-armhf arm64 amd64}
DEB_VERSION=$(scripts/version.sh --deb)
LDFLAGS=$(scripts/version.sh --ldflags)
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# maint NAME: packaging/deb/NAME with #LIB# replaced by packaging/lib.sh.
maint() {
	awk -v lib=packaging/lib.sh '$0 == "#LIB#" { while ((getline l < lib) > 0) print l; next } { print }' "packaging/deb/$1"
}

for arch in $ARCHES; do
	case $arch in
	armhf) goenv=(GOARCH=arm GOARM=6) ;;
	arm64) goenv=(GOARCH=arm64) ;;
	amd64) goenv=(GOARCH=amd64) ;;
	*)
		echo "deb.sh: unknown architecture $arch (armhf, arm64, amd64)" >&2
		exit 1
		;;
	esac
	root=$work/$arch
	mkdir -p "$root/DEBIAN"
	env CGO_ENABLED=0 GOOS=linux "${goenv[@]}" go build -tags "$GO_TAGS" -trimpath -ldflags "$LDFLAGS" \
		-o "$root/usr/bin/edge-agent" ./cmd/agent
	chmod 0755 "$root/usr/bin/edge-agent"
	install -D -m 0644 systemd/edge-agent.service "$root/usr/lib/systemd/system/edge-agent.service"
	install -D -m 0644 systemd/sysusers.d/edge-agent.conf "$root/usr/lib/sysusers.d/edge-agent.conf"
	install -D -m 0640 systemd/agent.toml.example "$root/etc/edge-agent/agent.toml"
	install -d -m 0755 "$root/usr/share/doc/edge-agent"
	gzip -9n <README.md >"$root/usr/share/doc/edge-agent/README.md.gz"
	chmod 0644 "$root/usr/share/doc/edge-agent/README.md.gz"

	install -m 0644 packaging/deb/conffiles "$root/DEBIAN/conffiles"
	for s in postinst prerm postrm; do
		maint "$s" >"$root/DEBIAN/$s"
		chmod 0755 "$root/DEBIAN/$s"
	done
	size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
	sed -e "s/@VERSION@/$DEB_VERSION/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$size/" \
		packaging/deb/control.in >"$root/DEBIAN/control"
	find "$root" -type d -exec chmod 0755 {} +

	deb="$OUT/edge-agent_${DEB_VERSION}_${arch}.deb"
	dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
	echo "$deb ($(stat -c %s "$deb") bytes)"
done
