# edge-agent — see README.md. `make test` is the test command (.ci/run uses it).
# The version stamp comes from scripts/version.sh (git describe; override: make deb VERSION=1.2.3).
include scripts/build.env

.PHONY: test build cross deb demo bench lint clean

test:
	scripts/test.sh

build:
	CGO_ENABLED=0 go build -tags "$(GO_TAGS)" -trimpath -ldflags "$$(scripts/version.sh --ldflags)" -o bin/edge-agent ./cmd/agent

cross:
	scripts/build.sh

# dist/edge-agent_<version>_{armhf,arm64,amd64}.deb (armhf for ARMv6, as Raspberry Pi OS is).
deb:
	scripts/deb.sh

demo:
	scripts/demo.sh

bench:
	scripts/bench.sh

lint:
	@out=$$(find . -name '*.go' -not -path './vendor/*' -not -path '*/testdata/*' -not -path './.git/*' -print0 | xargs -0 -r gofmt -l); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...

clean:
	rm -rf bin dist
