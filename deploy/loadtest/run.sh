#!/usr/bin/env bash
# Load-tests a running `make dev` with wrk, against pgbench on the same
# PostgreSQL in the same run: three rounds, each of GET /healthz (the HTTP
# floor), pgbench select-only, product reads, pgbench simple-update and admin
# stock adjustments, interleaved so that all see the same machine. It prints
# the median of each and the two ratios that issue 13 sets targets for.
#
# It reads the variables the dev stack reads, so that it finds a stack
# started on other ports: GATEWAY_ADDR (or BASE, the gateway's URL),
# ORDERSAGA_DATA_DIR (admin credentials), CATALOG_DATABASE_URL or
# DATABASE_URL (a postgres:// URL), else DEV_POSTGRES_PORT. SKUS (default
# 1000) is how many products the reads and adjustments spread over, created
# once (LOAD-0001, …); DURATION (default 8s) is each round's length.
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")" && pwd)
for tool in wrk pgbench psql curl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install wrk postgresql-client curl" >&2; exit 1; }
done
addr=${GATEWAY_ADDR:-127.0.0.1:8080}
base=${BASE:-http://${addr/0.0.0.0/127.0.0.1}}
data=${ORDERSAGA_DATA_DIR:-.data}
dsn=${CATALOG_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:${DEV_POSTGRES_PORT:-55432}/ordersaga}}
export SKUS=${SKUS:-1000}
duration=${DURATION:-8s}

# pgbench gets a database of its own on the same server, initialised once.
bench=$(sed -E 's#^(postgres(ql)?://[^/?]*)(/[^?]*)?#\1/pgbench#' <<<"$dsn")
if [ "$(psql "$dsn" -tAc "SELECT count(*) FROM pg_database WHERE datname = 'pgbench'")" = 0 ]; then
  psql "$dsn" -qc 'CREATE DATABASE pgbench'
fi
if [ "$(psql "$bench" -tAc "SELECT count(*) FROM pgbench_branches" 2>/dev/null || true)" != 10 ]; then
  echo "initialising pgbench (scale 10) on $(sed -E 's#//[^@/]*@#//#' <<<"$bench")"
  pgbench -i -q -s 10 "$bench" >/dev/null 2>&1
fi

read -r email password < "$data/admin-credentials.txt"
TOKEN=$(curl -fsS -XPOST "$base/api/v1/auth/login" -d "{\"email\":\"$email\",\"password\":\"$password\"}" |
  sed -E 's/.*"token":"([^"]+)".*/\1/')
export TOKEN

# The products the rounds use, created once (a 409 means it exists).
last=$(printf 'LOAD-%04d' "$SKUS")
if [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v1/products/$last")" != 200 ]; then
  echo "creating $SKUS products LOAD-0001…$last"
  seq -f 'LOAD-%04g' 1 "$SKUS" | xargs -P4 -I{} curl -s -o /dev/null -w '%{http_code}\n' -XPOST "$base/api/v1/products" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"sku":"{}","name":"Load test {}","brand":"Load","price_cents":100,"stock":[{"warehouse":"west","on_hand":100000}]}' |
    grep -vE '^(201|409)$' && { echo "creating the load-test products failed" >&2; exit 1; }
fi

# round WHAT prints one figure per line: requests or transactions per
# second, then p99 in ms (pgbench: its mean latency, it has no p99).
round() {
  local out
  case $1 in
    healthz) out=$(wrk -c32 -t2 -d"$duration" --latency "$base/healthz") ;;
    product) out=$(wrk -c32 -t2 -d"$duration" --latency -s "$here/product-read.lua" "$base") ;;
    adjust) out=$(wrk -c32 -t2 -d"$duration" --latency -s "$here/stock-adjust.lua" "$base") ;;
    select) out=$(pgbench -n -S -c32 -j2 -T"${duration%s}" "$bench" 2>&1) ;;
    update) out=$(pgbench -n -N -c32 -j2 -T"${duration%s}" "$bench" 2>&1) ;;
  esac
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
    echo "$1: errors:" >&2
    grep -E 'Non-2xx|Socket errors' <<<"$out" >&2
    exit 1
  fi
  case $1 in
    select | update) awk '/^tps/ {t=$3} /^latency average/ {l=$4} END {print t; print l}' <<<"$out" ;;
    *) awk '/Requests\/sec/ {r=$2} $1=="99%" {p=$2} END {
         v=p+0; if (p ~ /us$/) v/=1000; else if (p ~ /[^m]s$/) v*=1000; print r; print v}' <<<"$out" ;;
  esac
}

kinds=(healthz select product update adjust)
declare -A rate p99
for r in 1 2 3; do
  for k in "${kinds[@]}"; do
    res=$(round "$k")
    rs=${res%%$'\n'*} lat=${res##*$'\n'}
    rate[$k]+="$rs "
    p99[$k]+="$lat "
    printf 'round %d %-8s %10.0f/s  %8.2f ms\n' "$r" "$k" "$rs" "$lat"
  done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | sed -n 2p; }
declare -A med
echo
echo "median of 3     per second   p99 ms (pgbench: mean)"
for k in "${kinds[@]}"; do
  med[$k]=$(median "${rate[$k]}")
  printf '%-14s %12.0f %10.2f\n' "$k" "${med[$k]}" "$(median "${p99[$k]}")"
done
awk -v p="${med[product]}" -v s="${med[select]}" -v a="${med[adjust]}" -v u="${med[update]}" 'BEGIN {
  printf "product reads / pgbench select-only:     %.2f (target >= 0.60)\n", p/s
  printf "stock adjustments / pgbench simple-update: %.2f (target >= 0.75)\n", a/u }'
