#!/usr/bin/env bash
# deploy/check.sh: checks what deploy/ promises, without a cluster or network.
#
#   1. deploy/k8s/stages.yaml and keda.yaml are what gen.sh generates;
#   2. every manifest decodes strictly into the official Kubernetes types (or
#      KEDA's ScaledObject fields) and has what pushpipe relies on (deploy/lint);
#      kubeconform too, when it is installed and KUBECONFORM_SCHEMAS points at
#      a local schema directory (it cannot download schemas here);
#   3. the shell scripts parse (and pass shellcheck, if installed);
#   4. promtool check metrics accepts the /metrics of every pushpipe process
#      (api, ingest, split, resolve, dedupe, deliver), scraped from a running
#      deploy/local-cluster.sh. Needs promtool (apt-get install -y
#      --no-install-recommends prometheus); METRICS=0 skips this step.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { printf 'check: %s\n' "$*"; }

TMP=$(mktemp -d)
LC_PID=
cleanup() {
	if [[ -n $LC_PID ]]; then
		kill -TERM "$LC_PID" 2>/dev/null || true
		wait "$LC_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

say "generated manifests are up to date"
OUT=$TMP deploy/k8s/gen.sh >/dev/null
diff -u deploy/k8s/stages.yaml "$TMP/stages.yaml"
diff -u deploy/k8s/keda.yaml "$TMP/keda.yaml"

say "manifests decode strictly and keep pushpipe's invariants"
(cd deploy/lint && go run . ../k8s)
if command -v kubeconform >/dev/null && [[ -n ${KUBECONFORM_SCHEMAS:-} ]]; then
	kubeconform -strict -summary -schema-location "$KUBECONFORM_SCHEMAS" -skip Kustomization deploy/k8s/*.yaml
else
	say "kubeconform skipped (needs it installed and KUBECONFORM_SCHEMAS=local schema dir; no network here)"
fi

say "scripts parse"
for s in deploy/*.sh deploy/k8s/*.sh; do bash -n "$s"; done
if command -v shellcheck >/dev/null; then shellcheck deploy/*.sh deploy/k8s/*.sh; fi

if [[ ${METRICS:-1} == 0 ]]; then
	say "metrics check skipped (METRICS=0)"
	exit 0
fi
command -v promtool >/dev/null || { say "promtool not found: apt-get install -y --no-install-recommends prometheus (or METRICS=0)"; exit 1; }

say "promtool check metrics on every process (starting deploy/local-cluster.sh)"
base=$((20000 + RANDOM % 20000))
REDIS_PORT=$base PG_PORT=$((base + 10)) API_PORT=$((base + 20)) FAKE_PORT=$((base + 30)) OPS_PORT=$((base + 40)) \
	deploy/local-cluster.sh 2>"$TMP/local-cluster.log" &
LC_PID=$!
for _ in $(seq 1200); do
	grep -q "everything is up" "$TMP/local-cluster.log" && break
	if ! kill -0 "$LC_PID" 2>/dev/null; then
		cat "$TMP/local-cluster.log" >&2
		say "local cluster did not start"
		exit 1
	fi
	sleep 0.1
done
grep -q "everything is up" "$TMP/local-cluster.log" || { cat "$TMP/local-cluster.log" >&2; exit 1; }

fails=0
port=$((base + 40))
for name in api ingest split resolve dedupe deliver; do
	if ! curl -sf "http://127.0.0.1:$port/metrics" -o "$TMP/$name.prom"; then
		say "$name: GET /metrics on :$port failed"
		fails=$((fails + 1))
	elif ! promtool check metrics <"$TMP/$name.prom"; then
		say "$name: promtool rejects its /metrics"
		fails=$((fails + 1))
	else
		say "$name: $(grep -vc '^#' "$TMP/$name.prom") samples, promtool ok"
	fi
	port=$((port + 1))
done
[[ $fails == 0 ]] || exit 1
say "all checks passed"
