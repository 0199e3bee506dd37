#!/usr/bin/env bash
# Measures websocket fan-out against a running `make dev`, with the hub in a
# process of its own: for each of three runs, starts `ordersaga ws` on ports
# of its own, consuming a topic of its own (so that no real dashboard sees
# the synthetic orders), runs `ordersaga fanout` against it and stops it;
# then prints the medians of the runs.
#
# The dev stack's settings come from the same variables `make dev` reads:
# ORDERSAGA_DATA_DIR (credentials and the JWT secret), GATEWAY_ADDR,
# DEV_KAFKA_PORT or KAFKA_BROKERS, DEV_POSTGRES_PORT or DATABASE_URL.
# FANOUT_WS_ADDR and FANOUT_OPS_ADDR are the benchmark hub's ports,
# FANOUT_TOPIC its topic, FANOUTFLAGS more flags for `ordersaga fanout`
# (e.g. FANOUTFLAGS='--clients 1000'), RUNS the number of runs,
# ORDERSAGA_HUB_BIN another build's binary for the hub (to compare two
# builds with the same clients), and PROFILE=file.pprof takes a CPU profile
# of the hub during the first run.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${ORDERSAGA_BIN:-.bin/ordersaga}
hub_bin=${ORDERSAGA_HUB_BIN:-$bin}
data=${ORDERSAGA_DATA_DIR:-.data}
base=${BASE:-http://${GATEWAY_ADDR:-127.0.0.1:8080}}
kafka=${KAFKA_BROKERS:-127.0.0.1:${DEV_KAFKA_PORT:-9092}}
database=${DATABASE_URL:-postgres://postgres@127.0.0.1:${DEV_POSTGRES_PORT:-55432}/ordersaga?sslmode=disable}
ws_addr=${FANOUT_WS_ADDR:-127.0.0.1:8091}
ops_addr=${FANOUT_OPS_ADDR:-127.0.0.1:9475}
topic=${FANOUT_TOPIC:-ordersaga-fanout-bench}
runs=${RUNS:-3}
if [ "$topic" = "${KAFKA_TOPIC:-order-events}" ]; then
  echo "FANOUT_TOPIC is the real order-events topic; give the benchmark a topic of its own" >&2
  exit 2
fi
[ -x "$bin" ] || { echo "$bin is missing: make build" >&2; exit 1; }
[ -r "$data/jwt-secret" ] || { echo "$data/jwt-secret is missing: is make dev running with ORDERSAGA_DATA_DIR=$data?" >&2; exit 1; }
curl -fsS -o /dev/null "$base/healthz" || { echo "no gateway at $base: start make dev first" >&2; exit 1; }

work=$(mktemp -d -t fanout.XXXXXX)
hub=
stop_hub() {
  [ -n "$hub" ] || return 0
  kill "$hub" 2>/dev/null || true
  wait "$hub" 2>/dev/null || true
  hub=
}
trap 'stop_hub; rm -rf "$work"' EXIT

# start_hub runs `ordersaga ws` with only the hub's own settings (the
# environment's KAFKA_TOPIC, if any, is the real one) and waits until it
# is ready.
start_hub() {
  env -u KAFKA_TOPIC -u WS_PUBLIC_URL -u WS_OPS_URL \
    KAFKA_TOPIC="$topic" KAFKA_BROKERS="$kafka" DATABASE_URL="$database" JWT_SECRET="$(cat "$data/jwt-secret")" \
    WS_ADDR="$ws_addr" WS_OPS_ADDR="$ops_addr" DEBUG_PPROF=true LOG_LEVEL=warn \
    "$hub_bin" ws >>"$work/hub.log" 2>&1 &
  hub=$!
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://$ops_addr/readyz" 2>/dev/null && break
    kill -0 "$hub" 2>/dev/null || { echo "the hub exited:" >&2; cat "$work/hub.log" >&2; exit 1; }
    sleep 0.2
  done
  curl -fsS -o /dev/null "http://$ops_addr/readyz" || { echo "the hub at $ops_addr never became ready:" >&2; cat "$work/hub.log" >&2; exit 1; }
}

results=()
for run in $(seq "$runs"); do
  # A fresh hub each run: its memory before the clients is a clean
  # baseline, not what the last run's connections left behind.
  start_hub
  echo "== run $run of $runs: hub pid $hub on ws://$ws_addr/ws (ops http://$ops_addr), topic $topic"
  profiler=
  if [ "$run" = 1 ] && [ -n "${PROFILE:-}" ]; then
    # After the clients have connected, while the events flow.
    (sleep "${PROFILE_DELAY:-15}"; curl -fsS -o "$PROFILE" "http://$ops_addr/debug/pprof/profile?seconds=10" && echo "hub CPU profile: $PROFILE") &
    profiler=$!
  fi
  # shellcheck disable=SC2086 # FANOUTFLAGS is split into flags on purpose
  "$bin" fanout --url "$base" --ws "ws://$ws_addr/ws" --ops "http://$ops_addr" --kafka "$kafka" --topic "$topic" \
    --data-dir "$data" ${FANOUTFLAGS:-} | tee "$work/run.txt"
  results+=("$(grep '^fanout-result ' "$work/run.txt")")
  [ -z "$profiler" ] || wait "$profiler"
  stop_hub
done

echo "== medians of $runs runs"
all=$(printf '%s\n' "${results[@]}")
medians="fanout-median"
for key in $(head -1 <<<"$all" | tr ' ' '\n' | sed -n 's/=.*//p'); do
  values=$(tr ' ' '\n' <<<"$all" | sed -n "s/^$key=//p" | sort -g)
  medians+=" $key=$(sed -n "$((($(wc -l <<<"$values") + 1) / 2))p" <<<"$values")"
done
echo "$medians"
if grep -qiE 'panic|fatal' "$work/hub.log"; then
  echo "the hub logged:" >&2
  cat "$work/hub.log" >&2
fi
