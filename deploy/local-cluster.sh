#!/usr/bin/env bash
# local-cluster.sh: the production topology on one machine, every piece its
# own process: a 3-master Redis Cluster (AOF everysec, noeviction), PostgreSQL,
# the fake provider, the API and every stage (ingest, split, resolve, dedupe,
# deliver). All are children of this script; it waits on them. Ctrl-C (or
# SIGTERM) stops them all; if any one exits on its own, the script says which
# and stops the rest, so a broken stage is never hidden.
#
#   deploy/local-cluster.sh              # build, start, wait
#   KEEP=1 deploy/local-cluster.sh       # keep the data directory afterwards
#
# Ports (override by environment): Redis REDIS_PORT..+2 (cluster bus +100),
# PostgreSQL PG_PORT, API API_PORT, fake provider FAKE_PORT, and the ops HTTP
# ports (/metrics /healthz /readyz) OPS_PORT..OPS_PORT+5 for api, ingest,
# split, resolve, dedupe and deliver. Needs redis-server, redis-cli,
# PostgreSQL 15+ binaries, openssl and Go.
set -euo pipefail

REDIS_PORT=${REDIS_PORT:-17001}
PG_PORT=${PG_PORT:-17432}
API_PORT=${API_PORT:-17080}
FAKE_PORT=${FAKE_PORT:-17443}
OPS_PORT=${OPS_PORT:-17090}
PARTITIONS=${PUSHPIPE_PARTITIONS:-16}
SHUTDOWN_TIMEOUT=${SHUTDOWN_TIMEOUT:-10s}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(mktemp -d /tmp/pushpipe-local.XXXXXX)
chmod 755 "$DIR" # PostgreSQL runs as its own user when we are root
PIDS=()
NAMES=()

log() { printf '%s local-cluster: %s\n' "$(date +%T)" "$*" >&2; }

stop_all() {
	trap - INT TERM EXIT
	log "stopping ${#PIDS[@]} processes"
	for i in "${!PIDS[@]}"; do
		# PostgreSQL: SIGINT is its fast shutdown; SIGTERM would wait for clients.
		if [[ ${NAMES[$i]} == postgres ]]; then sig=INT; else sig=TERM; fi
		kill -s "$sig" "${PIDS[$i]}" 2>/dev/null || true
	done
	wait || true
	if [[ ${KEEP:-0} == 1 ]]; then log "data kept in $DIR"; else rm -rf "$DIR"; fi
}
trap 'stop_all; exit 0' INT TERM
trap stop_all EXIT

# start NAME CMD...: run a child with its output in $DIR/NAME.log.
start() {
	local name=$1
	shift
	"$@" >"$DIR/$name.log" 2>&1 &
	PIDS+=($!)
	NAMES+=("$name")
}

wait_until() { # wait_until WHAT CMD...: poll for up to 30 s
	local what=$1
	shift
	for _ in $(seq 300); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	log "$what not ready after 30 s; logs in $DIR"
	exit 1
}

for bin in redis-server redis-cli openssl go; do
	command -v "$bin" >/dev/null || { log "$bin not found (apt-get install -y redis-server redis-tools openssl; Go from go.dev)"; exit 1; }
done
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $PGBIN/postgres ]] || { log "PostgreSQL not found (apt-get install -y postgresql)"; exit 1; }

log "building pushpipe into $DIR"
(cd "$ROOT" && go build -o "$DIR/pushpipe" ./cmd/pushpipe)
PP=$DIR/pushpipe

# Redis Cluster: 3 masters, no replicas (see deploy/README.md for production).
ADDRS=()
for i in 0 1 2; do
	port=$((REDIS_PORT + i))
	mkdir -p "$DIR/redis$i"
	start "redis$i" redis-server --bind 127.0.0.1 --port "$port" --protected-mode no \
		--cluster-enabled yes --cluster-port $((port + 100)) --cluster-config-file "$DIR/redis$i/nodes.conf" \
		--cluster-node-timeout 5000 --dir "$DIR/redis$i" --save "" \
		--appendonly yes --appendfsync everysec --maxmemory-policy noeviction
	ADDRS+=("127.0.0.1:$port")
done
for a in "${ADDRS[@]}"; do wait_until "redis $a" redis-cli -h "${a%:*}" -p "${a#*:}" ping; done
redis-cli --cluster create "${ADDRS[@]}" --cluster-replicas 0 --cluster-yes >"$DIR/cluster-create.log"
for a in "${ADDRS[@]}"; do
	wait_until "cluster state on $a" bash -c "redis-cli -h ${a%:*} -p ${a#*:} cluster info | grep -q cluster_state:ok"
done

# PostgreSQL: initdb in the data dir; as root, run it as the postgres user
# with setpriv, which execs (no intermediate process to swallow signals).
AS_PG=()
if [[ $(id -u) == 0 ]]; then
	chown postgres: "$DIR"
	AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups)
fi
"${AS_PG[@]}" "$PGBIN/initdb" -D "$DIR/pg" -A trust -U postgres -E UTF8 >"$DIR/initdb.log"
start postgres "${AS_PG[@]}" "$PGBIN/postgres" -D "$DIR/pg" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
	-c unix_socket_directories="$DIR" -c max_connections=200
wait_until postgres "$PGBIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT"

export PUSHPIPE_REDIS_ADDR
PUSHPIPE_REDIS_ADDR=$(IFS=,; echo "${ADDRS[*]}")
export PUSHPIPE_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
export PUSHPIPE_PARTITIONS=$PARTITIONS
export PUSHPIPE_ADMIN_TOKEN=${PUSHPIPE_ADMIN_TOKEN:-$(openssl rand -hex 24)}
"$PP" migrate

# The fake provider stands in for APNs and FCM; deliver trusts its
# self-signed certificate and signs APNs tokens with a throwaway key.
start fakeprovider "$PP" fakeprovider --listen "127.0.0.1:$FAKE_PORT" --cert-out "$DIR/fake.pem"
wait_until "fake provider certificate" test -s "$DIR/fake.pem"
openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out "$DIR/apns.p8"

# The stages are the stage table's (pipeline.Stages, less the Optional
# ones), in pipeline order, on ops ports after the API's.
mapfile -t STAGES < <(cd "$ROOT/deploy/lint" && go run . -stages -partitions 1 | cut -d' ' -f1)
STAGE=(--shutdown-timeout "$SHUTDOWN_TIMEOUT")
start api "$PP" api --listen "127.0.0.1:$API_PORT" --http "127.0.0.1:$OPS_PORT"
port=$OPS_PORT
for name in "${STAGES[@]}"; do
	port=$((port + 1))
	case $name in
	deliver)
		start deliver env SSL_CERT_FILE="$DIR/fake.pem" "$PP" deliver --http "127.0.0.1:$port" "${STAGE[@]}" \
			--apns-key "$DIR/apns.p8" --apns-key-id LOCALKEY01 --apns-team-id LOCALTEAM1 --apns-topic com.example.pushpipe \
			--apns-host "https://127.0.0.1:$FAKE_PORT" --fcm-project local --fcm-endpoint "https://127.0.0.1:$FAKE_PORT/v1"
		;;
	*) start "$name" "$PP" "$name" --http "127.0.0.1:$port" "${STAGE[@]}" ;;
	esac
done

# ready NAME PORT: wait for 200 on /readyz, failing fast if the process died.
ready() {
	local name=$1 port=$2 pid
	for i in "${!NAMES[@]}"; do [[ ${NAMES[$i]} == "$name" ]] && pid=${PIDS[$i]}; done
	for _ in $(seq 300); do
		if ! kill -0 "$pid" 2>/dev/null || [[ $(ps -o stat= -p "$pid") == Z* ]]; then
			log "$name exited during start-up; last lines of $DIR/$name.log:"
			tail -n 20 "$DIR/$name.log" >&2
			exit 1
		fi
		if bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && grep -q '200 OK' <&3" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	log "$name not ready on :$port after 30 s; logs in $DIR"
	exit 1
}
port=$OPS_PORT
for name in api "${STAGES[@]}"; do
	ready "$name" "$port"
	port=$((port + 1))
done

cat >&2 <<EOF
$(date +%T) local-cluster: everything is up (logs in $DIR/*.log); deliver serves app com.example.pushpipe. In another shell:
  export PUSHPIPE_REDIS_ADDR=$PUSHPIPE_REDIS_ADDR
  export PUSHPIPE_DATABASE_URL='$PUSHPIPE_DATABASE_URL' PUSHPIPE_PARTITIONS=$PARTITIONS
  export PUSHPIPE_ADMIN_TOKEN=$PUSHPIPE_ADMIN_TOKEN
  pushpipe status --watch                 # streams, lag, consumers
  curl -H "Authorization: Bearer \$PUSHPIPE_ADMIN_TOKEN" http://127.0.0.1:$API_PORT/v1/campaigns/ID
  curl -sk https://127.0.0.1:$FAKE_PORT/_receipts/summary
Ctrl-C stops everything.
EOF

# Wait for any child to exit; if one does on its own, stop the rest.
set +e
wait -n "${PIDS[@]}"
code=$?
for i in "${!PIDS[@]}"; do
	if ! kill -0 "${PIDS[$i]}" 2>/dev/null || [[ $(ps -o stat= -p "${PIDS[$i]}" 2>/dev/null) == Z* ]]; then
		log "${NAMES[$i]} exited (status $code); last lines of its log:"
		tail -n 20 "$DIR/${NAMES[$i]}.log" >&2
		break
	fi
done
exit 1
