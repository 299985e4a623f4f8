# edge-agent — see README.md. `make test` is the test command (.ci/run uses it).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
export VERSION
include scripts/build.env

.PHONY: test build cross demo bench lint clean

test:
	scripts/test.sh

build:
	CGO_ENABLED=0 go build -tags "$(GO_TAGS)" -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/edge-agent ./cmd/agent

cross:
	scripts/build.sh

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
