# Lakka. Every target works on a fresh machine with Go installed.
# `make run` and `make test` are the two commands a newcomer needs.

GO        ?= go
BIN       := bin/lakka
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 3s
SEED      ?= 500
DIST      ?= dist
DEB_MAINTAINER ?= Lakka maintainers <maintainers@lakka-cache.invalid>

.PHONY: test-fleet help all build run test lint vet fmt-check unit fuzz fuzz-long bench bench-hit bench-peers deb clean

all: build

## help: list the targets
help:
	@grep -E '^## ' Makefile | sed 's/^## /  /'

## build: compile bin/lakka
build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/lakka

## run: start an origin (embedded store, demo content) and an edge in front of it on loopback
##      (addresses: ORIGIN_ADDR, EDGE_ADDR, ADMIN_ADDR; defaults 127.0.0.1:8000, :8080, :8081)
run: build
	./scripts/run.sh $(BIN) $(SEED)

## test: formatting, vet, every test with -race (and the allocation and memory tests without it), and a short run of every fuzz target
test: fmt-check vet unit fuzz

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -shuffle=on -count=1 -timeout 10m ./...
	GO=$(GO) ./scripts/norace.sh

## fuzz: run every fuzz target for FUZZTIME (default 3s); make fuzz FUZZTIME=1m for longer
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## lint: gofmt, go vet, staticcheck (pinned in go.mod's tool block), go.mod/go.sum tidy and verified
lint: fmt-check vet
	$(GO) mod tidy -diff
	$(GO) mod verify
	$(GO) tool staticcheck ./...

## test-fleet: the fleet lab (docs/CLUSTER.md): three zones of edges in network namespaces, a NATS cluster of
##             three, the origin on PostgreSQL, and the cluster's scenarios with their figures; needs root.
##             FLEET=short is CI's smaller version
FLEET ?= full
test-fleet:
	LAKKA_FLEET_LAB=$(FLEET) $(GO) test -count=1 -run '^TestFleetLab$$' -v -timeout 20m ./cmd/lakka

## bench: Go benchmarks of the hot paths (allocations included)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1s ./...

## bench-hit: cache-hit throughput of the edge against a bare fasthttp server, with wrk
bench-hit: build
	./scripts/bench-hit.sh $(BIN)

## bench-peers: the same spike against a Lakka edge, Varnish and nginx on loopback, then the comparison
## (installs varnish, varnish-modules, nginx and wrk from Debian's packages when missing)
bench-peers: build
	./scripts/bench-peers.sh $(BIN)

## deb: build dist/lakka_VERSION_ARCH.deb for ops: the static binary, systemd units, /etc/lakka configuration
##      (version from git describe; another architecture: GOARCH=arm64 make deb; see README, Installing the Debian package)
deb:
	@GO="$(GO)" VERSION="$(VERSION)" LDFLAGS="$(LDFLAGS)" DIST="$(DIST)" DEB_MAINTAINER="$(DEB_MAINTAINER)" ./packaging/deb.sh

clean:
	rm -rf bin $(DIST)
