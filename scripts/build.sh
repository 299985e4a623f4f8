#!/usr/bin/env bash
# Cross-compiles static, version-stamped edge-agent binaries into dist/ and writes
# dist/SHA256SUMS. The stamp (version, commit, build date) comes from scripts/version.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/build.env

VERSION=$(scripts/version.sh | sed -n 's/^VERSION=//p')
LDFLAGS=$(scripts/version.sh --ldflags)
PKG=${PKG:-./cmd/agent}
OUT=dist

# name        GOOS  GOARCH GOARM
targets=(
	"linux-armv6  linux arm   6"
	"linux-armv7  linux arm   7"
	"linux-arm64  linux arm64 -"
	"linux-amd64  linux amd64 -"
)

rm -rf "$OUT"
mkdir -p "$OUT"
echo "==> building edge-agent $VERSION from $PKG"
for t in "${targets[@]}"; do
	read -r name goos goarch goarm <<<"$t"
	bin="$OUT/edge-agent-$name"
	echo "    $bin"
	vars=(CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch")
	[ "$goarm" = - ] || vars+=(GOARM="$goarm")
	env "${vars[@]}" go build -tags "$GO_TAGS" -trimpath -ldflags "$LDFLAGS" -o "$bin" "$PKG"
done

echo "==> sizes"
ls -l "$OUT"/edge-agent-*
(cd "$OUT" && sha256sum edge-agent-* > SHA256SUMS)
echo "==> $OUT/SHA256SUMS"
cat "$OUT/SHA256SUMS"
