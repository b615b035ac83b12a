#!/usr/bin/env bash
# gen.sh writes stages.yaml (a Deployment and a PodDisruptionBudget per stage)
# and keda.yaml (a ScaledObject per stage with one redis-cluster-streams
# trigger per partition key of each stream the stage reads, its express lane
# included: KEDA reads one stream per trigger, and each logical stream is
# PARTITIONS keys). The stages, whether they need PostgreSQL and
# their stream keys come from pipeline.Stages and pipeline.Keys (deploy/lint
# -stages): every row but the Optional ones, which run only where an
# operator configures them. It also writes webhook/webhook.yaml, a
# Deployment and a PodDisruptionBudget per line of RECEIVERS, which the
# default kustomization leaves out (kubectl apply -k deploy/k8s/webhook).
# Sizes are the table below, a stage without a line of its own taking the *
# line's. Run it, commit the three files; deploy/check.sh fails when they
# are stale.
#
#   deploy/k8s/gen.sh            # PARTITIONS=16 PREFIX=pp by default
set -euo pipefail
cd "$(dirname "$0")"
PARTITIONS=${PARTITIONS:-16}
PREFIX=${PREFIX:-pp}
IMAGE=${IMAGE:-pushpipe:0.1.0}
OUT=${OUT:-.}

# Sizes from deploy/CAPACITY.md (peak RSS 57-99 MiB per stage process measured;
# minimum 2 of each for availability, deliver 4 for in-flight concurrency).
# stage  shutdown grace cpu   mem    memlimit min max lag-per-partition
SIZES="
*        30s      45    500m  128Mi  512Mi    2   8   20
ingest   30s      45    500m  128Mi  512Mi    2   8   20000
split    30s      45    250m  128Mi  512Mi    2   4   1
resolve  30s      45    500m  128Mi  512Mi    2   16  4
dedupe   30s      45    500m  128Mi  512Mi    2   8   20
deliver  30s      45    1000m 256Mi  1Gi      4   16  20
webhook  30s      45    250m  128Mi  512Mi    2   2   -
"
# Webhook receivers, a Deployment each (its replicas: the webhook line of
# SIZES; no ScaledObject: a receiver's pace is its answers and --rate, and
# lag grows most when it is down, where more pods would only retry more).
# Every group gets every result event; the pods of one share its events.
# Group webhook is Deployment and Secret pushpipe-webhook; another group G
# is pushpipe-webhook-G. The Secret holds url (PUSHPIPE_WEBHOOK_URL: it may
# carry credentials) and secrets (the signing secrets, one a line).
# rate: events per second over all its pods (0: no cap); filter: the
# outcomes POSTed (-: all); from: where the group starts on its first start
# (oldest: every event results keeps, a day's by default; now).
# The environment's RECEIVERS, if set, replaces the table (deploy/lint's
# tests generate a second receiver so).
# group  rate  filter  linger  from
RECEIVERS=${RECEIVERS:-"
webhook  2000  -       250ms   oldest
"}
# name db(yes/no) key... per stage, in pipeline order. db: the stage queries
# PostgreSQL, so it gets the pushpipe-db Secret; a stage without gets no
# database URL.
STAGES=$(cd ../lint && go run . -stages -partitions "$PARTITIONS" -prefix "$PREFIX")

# sizes prints a stage's sizes: its SIZES line, or the * line.
sizes() {
	local line
	line=$(awk -v s="$1" '$1 == s' <<<"$SIZES")
	[[ -n $line ]] || line=$(awk '$1 == "*"' <<<"$SIZES")
	cut -d' ' -f2- <<<"$(tr -s ' ' <<<"$line")"
}

extra_args() { # stage db: flags beyond the common stage flags
	case $1 in
	# --db-conns always given to a stage that queries PostgreSQL, so
	# deploy/README.md's connection budget is read off the manifests
	# (deploy/lint checks it).
	ingest | split) printf '%s\n' '"--db-conns", "4"' ;;
	resolve) printf '%s\n' '"--db-conns", "8"' ;;
	deliver)
		printf '%s\n' '"--db-conns", "8", "--tps", "$(DELIVER_TPS)", "--in-flight", "512",' \
			'            "--apns-key", "/etc/pushpipe/providers/apns.p8", "--apns-key-id", "$(APNS_KEY_ID)",' \
			'            "--apns-team-id", "$(APNS_TEAM_ID)", "--apns-topic", "$(APNS_TOPIC)",' \
			'            "--fcm-credentials", "/etc/pushpipe/providers/fcm.json", "--fcm-project", "$(FCM_PROJECT)"'
		;;
	*) if [[ $2 == yes ]]; then printf '%s\n' '"--db-conns", "4"'; fi ;;
	esac
}

# secret_mount writes the volume lines (deployment's mounts) that mount
# Secret $3 read-only at $2 as volume $1; with $4, its key $4 alone, as a
# file of that name.
secret_mount() {
	cat <<EOF
          volumeMounts:
            - name: $1
              mountPath: $2
              readOnly: true
      volumes:
        - name: $1
          secret:
            secretName: $3
            defaultMode: 0440
EOF
	if [[ -n ${4:-} ]]; then
		printf '            items:\n              - key: %s\n                path: %s\n' "$4" "$4"
	fi
}

# deployment writes a Deployment and its PodDisruptionBudget: one for every
# stage (stages.yaml) and every webhook receiver (webhook/webhook.yaml), so
# a receiver keeps the stages' conventions. It reads name (the Deployment's),
# stage, replicas, args (the flags beyond the common ones), env and envfrom
# (YAML lines added to the container's), mounts (the volume lines) and the
# sizes (shutdown grace cpu mem memlimit).
deployment() {
	cat <<EOF
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $name
  namespace: pushpipe
  labels:
    app.kubernetes.io/name: $name
    app.kubernetes.io/component: stage
    app.kubernetes.io/part-of: pushpipe
spec:
  replicas: $replicas
  selector:
    matchLabels:
      app.kubernetes.io/name: $name
  template:
    metadata:
      labels:
        app.kubernetes.io/name: $name
        app.kubernetes.io/component: stage
        app.kubernetes.io/part-of: pushpipe
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "9090"
        prometheus.io/path: /metrics
    spec:
      terminationGracePeriodSeconds: $grace # --shutdown-timeout $shutdown + 15 s
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        # The group of mounted Secret files: the kubelet writes them as
        # root, so without it user 65532 could not read them.
        fsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: $stage
          image: $IMAGE
          args: ["$stage", "--http", ":9090", "--consumer", "\$(POD_NAME)", "--shutdown-timeout", "$shutdown"$( [[ -n $args ]] && printf ',\n            %s' "$args" )]
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name$env
          envFrom:
            - configMapRef:
                name: pushpipe-config
            - secretRef:
                name: pushpipe-redis$envfrom
          ports:
            - name: ops
              containerPort: 9090
          # /readyz: groups created and reading; /healthz: the process is alive.
          readinessProbe:
            httpGet:
              path: /readyz
              port: ops
            periodSeconds: 5
          livenessProbe:
            httpGet:
              path: /healthz
              port: ops
            periodSeconds: 10
            failureThreshold: 3
          resources:
            requests:
              cpu: $cpu
              memory: $mem
            limits:
              memory: $memlimit
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
EOF
	if [[ -n $mounts ]]; then printf '%s\n' "$mounts"; fi
	cat <<EOF
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: $name
  namespace: pushpipe
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: $name
EOF
}

{
	echo "# Generated by deploy/k8s/gen.sh; edit the table there, not this file."
	echo "#"
	echo "# One Deployment per stage: each pod is one consumer (named after the pod) of"
	echo "# its stage's group on every partition. terminationGracePeriodSeconds is the"
	echo "# shutdown timeout plus 15 s, so in-flight batches finish (or are left pending"
	echo "# for another pod to claim) before the kubelet sends SIGKILL."
	while read -r stage db _; do
		[[ -z $stage ]] && continue
		read -r shutdown grace cpu mem memlimit min _ _ <<<"$(sizes "$stage")"
		name=pushpipe-$stage replicas="$min # KEDA owns the count from here (keda.yaml)"
		args=$(extra_args "$stage" "$db") env= envfrom= mounts=
		if [[ $db == yes ]]; then
			envfrom=$'\n            - secretRef:\n                name: pushpipe-db'
		fi
		if [[ $stage == deliver ]]; then
			mounts=$(secret_mount providers /etc/pushpipe/providers pushpipe-providers)
		fi
		deployment
	done <<<"$STAGES"
} >"$OUT/stages.yaml"

{
	echo "# Generated by deploy/k8s/gen.sh; edit the table there, not this file."
	echo "#"
	echo "# KEDA scales each stage on its group's lag (XINFO GROUPS lag, Redis >= 7),"
	echo "# one trigger per partition key of each stream it reads (a stage with an"
	echo "# express lane: its express keys too, so waiting messages scale it as a"
	echo "# campaign's backlog does). The HPA takes the largest per-trigger"
	echo "# proposal, ceil(lag of that partition / lagCount), so lagCount is a"
	echo "# per-partition target: entries one pod should have waiting in one partition."
	echo "# Lag stays computable because the trimmer never removes unread entries"
	echo "# (a trim inside the unread range would make Redis report lag as nil)."
	cat <<EOF
---
# KEDA signs in to Redis as the processes do (Secret pushpipe-redis). For a
# Redis over TLS, also set the parameters tls ("enable"), ca, and cert + key
# for client certificates, from a Secret holding them (deploy/README.md).
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  name: pushpipe-redis
  namespace: pushpipe
  labels:
    app.kubernetes.io/part-of: pushpipe
spec:
  secretTargetRef:
    - parameter: username
      name: pushpipe-redis
      key: PUSHPIPE_REDIS_USERNAME
    - parameter: password
      name: pushpipe-redis
      key: PUSHPIPE_REDIS_PASSWORD
EOF
	while read -r stage db keys; do
		[[ -z $stage ]] && continue
		read -r _ _ _ _ _ min max lag <<<"$(sizes "$stage")"
		cat <<EOF
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: pushpipe-$stage
  namespace: pushpipe
  labels:
    app.kubernetes.io/part-of: pushpipe
spec:
  scaleTargetRef:
    name: pushpipe-$stage
  # Never to zero: a cold start would cost the first-send latency target.
  minReplicaCount: $min
  maxReplicaCount: $max
  pollingInterval: 5
  cooldownPeriod: 120
  triggers:
EOF
		for key in $keys; do
			cat <<EOF
    - type: redis-cluster-streams
      authenticationRef:
        name: pushpipe-redis
      metadata:
        addressesFromEnv: PUSHPIPE_REDIS_ADDR
        stream: "$key"
        consumerGroup: $stage
        lagCount: "$lag"
        activationLagCount: "0"
EOF
		done
	done <<<"$STAGES"
} >"$OUT/keda.yaml"
mkdir -p "$OUT/webhook"
{
	echo "# Generated by deploy/k8s/gen.sh; edit the RECEIVERS table there, not this file."
	echo "#"
	echo "# The webhook receivers, not in deploy/k8s's kustomization: a webhook without"
	echo "# its URL and signing secret cannot run. Create the receiver's Secret, then"
	echo "# kubectl apply -k deploy/k8s/webhook (deploy/README.md, \"Webhooks on"
	echo "# Kubernetes\"). Without the Secret the pods do not start (the kubelet waits"
	echo "# for it), so nothing is POSTed anywhere. A retired group's pods stay up and"
	echo "# not ready (0/1: /readyz 503, /healthz 200): delete the Deployment."
	read -r shutdown grace cpu mem memlimit min _ _ <<<"$(sizes webhook)"
	while read -r group rate filter linger from; do
		[[ -z $group ]] && continue
		name=pushpipe-webhook stage=webhook
		[[ $group == webhook ]] || name=pushpipe-webhook-$group
		replicas="$min # fixed: no ScaledObject (gen.sh, RECEIVERS)"
		args="\"--group\", \"$group\", \"--from\", \"$from\", \"--rate\", \"$rate\", \"--linger\", \"$linger\","
		[[ $filter == - ]] || args+=" \"--filter\", \"$filter\","
		args+=$'\n            "--secret-file", "/etc/pushpipe/webhook/secrets"'
		env="
            # The URL may carry credentials: from the Secret, out of process listings.
            - name: PUSHPIPE_WEBHOOK_URL
              valueFrom:
                secretKeyRef:
                  name: $name
                  key: url" envfrom=
		mounts=$(secret_mount signing /etc/pushpipe/webhook "$name" secrets)
		deployment
	done <<<"$RECEIVERS"
} >"$OUT/webhook/webhook.yaml"
echo "wrote $OUT/stages.yaml, $OUT/keda.yaml and $OUT/webhook/webhook.yaml ($PARTITIONS partitions, prefix $PREFIX)"
