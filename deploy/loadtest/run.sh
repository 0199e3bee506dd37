#!/usr/bin/env bash
# Load-tests a running `make dev` with wrk: a floor (GET /healthz), product
# reads and admin stock adjustments, three rounds each, interleaved so that
# all three see the same machine. Compare medians within one run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
base=${BASE:-http://127.0.0.1:8080}
data=${ORDERSAGA_DATA_DIR:-.data}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
read -r email password < "$data/admin-credentials.txt"
TOKEN=$(curl -fsS -XPOST "$base/api/v1/auth/login" -d "{\"email\":\"$email\",\"password\":\"$password\"}" |
  sed -E 's/.*"token":"([^"]+)".*/\1/')
export TOKEN
for round in 1 2 3; do
  for what in healthz product adjust; do
    case $what in
      healthz) args=("$base/healthz") ;;
      product) args=("$base/api/v1/products/ACME-001") ;;
      adjust)  args=(-s "$here/stock-adjust.lua" "$base") ;;
    esac
    line=$(wrk -t2 -c32 -d8s --latency "${args[@]}" | grep -E 'Requests/sec|99%' | tr -s ' ' | tr '\n' ' ')
    echo "round $round $what: $line"
  done
done
