# pushpipe — the two front-door commands are `make dev` and `make test`.
#
# Every recipe starts with `cd $(ROOT)`, the directory of this Makefile, so
# that `make -C clone dev` and `make -f clone/Makefile dev` work from any
# directory.
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
GO ?= go
BIN := ./pushpipe
PKGS := ./...

.PHONY: all build test vet bench dev fuzz clean test-secure-redis upgrade-drill

all: build

build:
	cd "$(ROOT)" && $(GO) build -buildvcs=auto -o $(BIN) ./cmd/pushpipe

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# go vet, staticcheck (fetched through the module proxy, pinned) and gofmt.
vet:
	cd "$(ROOT)" && $(GO) vet $(PKGS)
	cd "$(ROOT)" && $(GO) run $(STATICCHECK) $(PKGS)
	@cd "$(ROOT)" && test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1)

# Every test, against real redis-server and PostgreSQL started on free ports.
# The tests that run pushpipe as a process share one binary built here
# (pipelinetest.BinaryEnv) rather than each package linking its own.
TESTBIN := .pushpipe/test/pushpipe
# The slowest packages (5-6 minutes each) first: go test builds and starts
# packages in the order given (./... then skips them), two at a time on two
# cores, and one of them started last, after ./...'s alphabetical order, was
# the whole run's last minutes alone.
SLOWEST := ./stages/deliver ./stages/api/console ./bench/drills
TESTPKGS := $(if $(filter ./...,$(PKGS)),$(SLOWEST) $(PKGS),$(PKGS))
test: vet
	cd "$(ROOT)" && $(GO) build -o $(TESTBIN) ./cmd/pushpipe
	cd "$(ROOT)" && PUSHPIPE_TEST_BIN="$(ROOT)/$(TESTBIN)" $(GO) test -race -count=1 -timeout 15m $(TESTPKGS)
	cd "$(ROOT)/deploy/lint" && $(GO) test -count=1 ./... # its own module: ./... above does not reach it

# The end-to-end drills (every process a real binary) against a Redis with
# requirepass + an ACL user, then against a Redis that speaks only TLS and
# wants client certificates. `make test` runs TestDrillSecuredRedis, a
# campaign with Redis killed mid-way under each; this runs every drill.
test-secure-redis:
	cd "$(ROOT)" && PUSHPIPE_TEST_REDIS=auth $(GO) test -count=1 -timeout 15m ./bench/drills/
	cd "$(ROOT)" && PUSHPIPE_TEST_REDIS=tls $(GO) test -count=1 -timeout 15m ./bench/drills/

# The upgrade drill (deploy/README.md, "Upgrading"): the release
# PUSHPIPE_UPGRADE_FROM (default 5931b92), built from this clone's history,
# runs every stage as its own process while a campaign and direct messages
# go out; `migrate` and each process are replaced by this tree's, deliver
# rolled back and forward; the provider's receipts and a webhook receiver
# count every device once. Not in `make test`: its first run builds the old
# tree and every dependency -trimpath (20 min on a loaded 2-core machine);
# later runs take the build cache, 80 s. PUSHPIPE_UPGRADE_USERS=200000 for
# the README's figures.
upgrade-drill:
	cd "$(ROOT)" && $(GO) test -tags upgrade -count=1 -timeout 20m -run TestDrillUpgrade -v ./bench/drills/

# Benchmarks report ratios against floors measured in the same run.
bench: build
	cd "$(ROOT)" && $(GO) test -run '^$$' -bench . -benchtime 3x ./pipeline/
	cd "$(ROOT)" && $(GO) test -run '^$$' -bench . -benchtime 1x ./stages/...
	cd "$(ROOT)" && $(BIN) bench --users 1000000 --sink null --out bench/out --json bench/out/bench-null.json

# The whole pipeline on this machine: starts Redis and PostgreSQL itself when
# PUSHPIPE_REDIS_ADDR / PUSHPIPE_DATABASE_URL are unset, and sends a demo campaign.
# Their data is in .pushpipe/, except PostgreSQL's as root (it then runs as user
# postgres, which may not reach this checkout): /var/tmp/pushpipe-dev-HASH,
# linked from .pushpipe/postgres. Both listen on 127.0.0.1 only, without
# passwords; their files are readable by their owner only.
# It writes .pushpipe/env (the addresses and tokens, 0600; `source` it in
# another shell) and keeps the same ports and tokens on every run; a second
# `make dev` in this checkout while one runs refuses (.pushpipe/dev.lock).
# DEV_FLAGS=--once exits (status 0) after the demo campaign, for scripts.
DEV_FLAGS ?=
dev: build
	cd "$(ROOT)" && $(BIN) dev $(DEV_FLAGS)

# Every decoder of untrusted input, FUZZTIME each. Their seed corpora run as
# ordinary tests in `make test`.
FUZZTIME ?= 60s
FUZZ_TARGETS := \
	./pipeline/:FuzzDecodeIDs ./pipeline/:FuzzResultRecords \
	./pipeline/:FuzzDeliverEntry ./pipeline/:FuzzDecodeTokens ./pipeline/:FuzzRangeEntry \
	./pipeline/:FuzzDedupeEntry ./pipeline/:FuzzDLQFields \
	./pipeline/devices/:FuzzParseEvent ./pipeline/devices/:FuzzParsePackedEvent \
	./stages/dedupe/:FuzzParseEntry \
	./stages/api/:FuzzDeviceBody ./stages/api/:FuzzDeviceBatchBody ./stages/api/:FuzzPreferencesBody \
	./stages/api/:FuzzCampaignBody ./stages/api/:FuzzBearer \
	./stages/api/:FuzzMessageBody ./stages/api/:FuzzSubscribersBody ./stages/api/:FuzzParseNotification \
	./stages/webhook/:FuzzVerify ./cmd/pushpipe/:FuzzParseSendAt ./cmd/pushpipe/:FuzzWebhookFilter \
	./stages/deliver/apns/:FuzzProviderAnswer ./pipeline/httpx/:FuzzParseRetryAfter \
	./stages/deliver/fcm/:FuzzProviderAnswer

fuzz:
	@set -e; cd "$(ROOT)"; for t in $(FUZZ_TARGETS); do \
		echo "== $${t#*:} in $${t%%:*}"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done

# As root, .pushpipe/postgres links to PostgreSQL's directory in /var/tmp.
clean:
	cd "$(ROOT)" && if [ -L .pushpipe/postgres ]; then \
		t=$$(readlink .pushpipe/postgres); case "$$t" in */pushpipe-dev-*) rm -rf "$$t";; esac; \
	fi
	cd "$(ROOT)" && rm -rf $(BIN) .pushpipe bench/out
