#!/usr/bin/env bash
# deploy/check.sh: checks what deploy/ promises, without a cluster or network.
#
#   1. deploy/k8s/stages.yaml, keda.yaml and webhook/webhook.yaml are what
#      gen.sh generates;
#   2. every manifest decodes strictly into the official Kubernetes types (or
#      KEDA's ScaledObject fields) and has what pushpipe relies on, and the
#      alerts and the Grafana dashboard name only metrics the code registers
#      (deploy/lint);
#      kubeconform too, when it is installed and KUBECONFORM_SCHEMAS points at
#      a local schema directory (it cannot download schemas here);
#      the kustomizations build (kubectl kustomize, client-side, when kubectl
#      is installed), and the default one holds no webhook: it would run
#      without a receiver's URL and secret;
#      the alerts pass their promtool unit tests (deploy/alerts_test.yaml),
#      when promtool is installed;
#   3. the shell scripts parse (and pass shellcheck, if installed);
#   4. promtool check metrics accepts the /metrics of every pushpipe process
#      (api and every stage deploy/lint -stages lists), scraped from a running
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
diff -u deploy/k8s/webhook/webhook.yaml "$TMP/webhook/webhook.yaml"

say "manifests decode strictly and keep pushpipe's invariants"
(cd deploy/lint && go run . ../k8s)
if command -v kubeconform >/dev/null && [[ -n ${KUBECONFORM_SCHEMAS:-} ]]; then
	kubeconform -strict -summary -schema-location "$KUBECONFORM_SCHEMAS" -skip Kustomization deploy/k8s/*.yaml deploy/k8s/webhook/*.yaml
else
	say "kubeconform skipped (needs it installed and KUBECONFORM_SCHEMAS=local schema dir; no network here)"
fi
if command -v kubectl >/dev/null; then
	say "kustomizations build; the default one starts no webhook"
	kubectl kustomize deploy/k8s >"$TMP/default.yaml"
	kubectl kustomize deploy/k8s/webhook >"$TMP/webhook.yaml"
	# A container whose first argument is webhook (kustomize writes args
	# as a block list).
	if grep -A1 'args:$' "$TMP/default.yaml" | grep -q '^ *- webhook$'; then
		say "kubectl apply -k deploy/k8s would start a webhook: keep deploy/k8s/webhook out of its kustomization"
		exit 1
	fi
	grep -q '^  name: pushpipe-webhook$' "$TMP/webhook.yaml" || { say "deploy/k8s/webhook builds no Deployment pushpipe-webhook"; exit 1; }
else
	say "kustomize builds skipped (needs kubectl)"
fi

if command -v promtool >/dev/null; then
	say "alert rules pass their promtool unit tests (deploy/alerts_test.yaml)"
	(cd deploy/lint && go run . -rules ../k8s) >"$TMP/rules.yaml"
	cp deploy/alerts_test.yaml "$TMP/"
	promtool check rules "$TMP/rules.yaml" >/dev/null
	promtool test rules "$TMP/alerts_test.yaml"
else
	say "alert unit tests skipped (needs promtool: apt-get install -y --no-install-recommends prometheus)"
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

# A small campaign first, so every stage's pushpipe_* series exist (a
# labelled series appears only once its stage handled something).
DB="postgres://postgres@127.0.0.1:$((base + 10))/postgres?sslmode=disable"
psql -q "$DB" -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO devices (app, token, user_id, platform, event_at)
SELECT 'com.example.pushpipe', CASE WHEN g % 2 = 0 THEN encode(sha256(('tok' || g)::bytea), 'hex') ELSE 'fcm_' || md5(g::text) END,
       g * 173, CASE WHEN g % 2 = 0 THEN 1 ELSE 2 END, now()
FROM generate_series(1, 200) g;
INSERT INTO subscriptions (channel, user_id) SELECT 'news', g * 173 FROM generate_series(1, 200) g;
SQL
token=$(sed -n 's/.*PUSHPIPE_ADMIN_TOKEN=\([0-9a-f]*\).*/\1/p' "$TMP/local-cluster.log" | head -1)
curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
	-d '{"app":"com.example.pushpipe","platform":"android","token":"fcm_check_device","user_id":1,"locale":"en"}' \
	"http://127.0.0.1:$((base + 20))/v1/devices" >/dev/null
curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
	-d '{"id":"check","app":"com.example.pushpipe","channels":["news"],"notification":{"title":"t","body":"b"}}' \
	"http://127.0.0.1:$((base + 20))/v1/campaigns" >/dev/null
for _ in $(seq 300); do
	curl -sfk "https://127.0.0.1:$((base + 30))/_receipts/summary" | grep -q '"accepted":200' && break
	sleep 0.1
done
curl -sfk "https://127.0.0.1:$((base + 30))/_receipts/summary" | grep -q '"accepted":200' || { say "the check campaign did not complete"; exit 1; }

fails=0
port=$((base + 40))
# api, then the stages local-cluster.sh started, on the ports after its.
mapfile -t STAGES < <(cd deploy/lint && go run . -stages -partitions 1 | cut -d' ' -f1)
for name in api "${STAGES[@]}"; do
	if ! curl -sf "http://127.0.0.1:$port/metrics" -o "$TMP/$name.prom"; then
		say "$name: GET /metrics on :$port failed"
		fails=$((fails + 1))
	elif ! promtool check metrics <"$TMP/$name.prom"; then
		say "$name: promtool rejects its /metrics"
		fails=$((fails + 1))
	else
		say "$name: $(grep -vc '^#' "$TMP/$name.prom") samples ($(grep -c '^pushpipe_' "$TMP/$name.prom") pushpipe_*), promtool ok"
	fi
	port=$((port + 1))
done
[[ $fails == 0 ]] || exit 1
say "all checks passed"
