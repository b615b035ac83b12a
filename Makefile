# pushpipe — the two front-door commands are `make dev` and `make test`.
GO ?= go
BIN := ./pushpipe
PKGS := ./...

.PHONY: all build test vet bench dev fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/pushpipe

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# go vet, staticcheck (fetched through the module proxy, pinned) and gofmt.
vet:
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1)

# Every test, against real redis-server and PostgreSQL started on free ports.
test: vet
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

# Benchmarks report ratios against floors measured in the same run.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./pipeline/
	$(GO) test -run '^$$' -bench . -benchtime 1x ./stages/...
	$(BIN) bench --users 1000000 --sink null --out bench/out --json bench/out/bench-null.json

# The whole pipeline on this machine: starts Redis and PostgreSQL itself when
# PUSHPIPE_REDIS_ADDR / PUSHPIPE_DATABASE_URL are unset, and sends a demo campaign.
dev: build
	$(BIN) dev

# Every decoder of untrusted input, FUZZTIME each. Their seed corpora run as
# ordinary tests in `make test`.
FUZZTIME ?= 60s
FUZZ_TARGETS := \
	./pipeline/:FuzzDecodeIDs \
	./stages/devices/:FuzzParseEvent ./stages/devices/:FuzzParsePackedEvent \
	./stages/dedupe/:FuzzParseEntry \
	./stages/api/:FuzzDeviceBody ./stages/api/:FuzzDeviceBatchBody ./stages/api/:FuzzPreferencesBody \
	./stages/api/:FuzzCampaignBody ./stages/api/:FuzzBearer \
	./stages/deliver/apns/:FuzzProviderAnswer ./stages/deliver/apns/:FuzzParseRetryAfter \
	./stages/deliver/fcm/:FuzzProviderAnswer ./stages/deliver/fcm/:FuzzParseRetryAfter

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== $${t#*:} in $${t%%:*}"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done

clean:
	rm -rf $(BIN) .pushpipe bench/out
