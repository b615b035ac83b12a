# pushpipe — the two front-door commands are `make dev` and `make test`.
GO ?= go
BIN := ./pushpipe
PKGS := ./...

.PHONY: all build test vet bench dev fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/pushpipe

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1)

# Every test, against real redis-server and PostgreSQL started on free ports.
test: vet
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

# Benchmarks report ratios against floors measured in the same run.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./pipeline/
	$(GO) test -run '^$$' -bench . -benchtime 1x ./stages/...
	$(BIN) bench --users 1000000 --sink null --json bench/out/bench-null.json

# The whole pipeline on this machine: starts Redis and PostgreSQL itself when
# PUSHPIPE_REDIS_ADDR / PUSHPIPE_DATABASE_URL are unset, and sends a demo campaign.
dev: build
	$(BIN) dev

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeIDs -fuzztime 60s ./pipeline/

clean:
	rm -rf $(BIN) .pushpipe bench/out
