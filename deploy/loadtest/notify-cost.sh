#!/usr/bin/env bash
# Measures what telling the gateways' product caches of a change costs the
# stock ledger's writes. pgbench runs the ledger's move (the statement of
# activities/inventory/ledger.go behind every reservation, sale, release and
# adjustment: one stock row and its catalog.stock_movements entry) on the
# catalogue of a running `make dev`, 32 clients, in three interleaved rounds
# of: the move alone (the tables' triggers off for the session, through
# session_replication_role: the dev stack's user is a superuser); the move
# with its catalog.changes row, written by the triggers as in production
# (what the caches poll); the move with a pg_notify of its sku instead,
# triggers off, which caches that LISTEN would need. PostgreSQL serialises the
# commits of notifying transactions on one lock, held while the commit is
# flushed, which the third shows.
#
# It spreads the moves over the SKUS products LOAD-0001… that run.sh
# creates (run that once first) and finds the database as run.sh does.
set -euo pipefail
shopt -s inherit_errexit
command -v pgbench >/dev/null || { echo "pgbench is missing: apt-get install postgresql-client" >&2; exit 1; }
dsn=${CATALOG_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:${DEV_POSTGRES_PORT:-55432}/ordersaga}}
skus=${SKUS:-1000}
duration=${DURATION:-8s}
scripts=$(mktemp -d)
trap 'rm -rf "$scripts"' EXIT

# move CTES RESULT writes the move as ledger.go does (moveSQL), for an
# admin's adjustment, with more CTEs and more of a result.
move() {
  cat <<SQL
\set n random(1, $skus)
\set d random(0, 1) * 2 - 1
WITH s AS (
    UPDATE catalog.stock SET on_hand = on_hand + :d, updated_at = now()
    WHERE sku = 'LOAD-' || lpad(CAST(:n AS text), 4, '0') AND warehouse = 'west'
      AND on_hand + :d >= 0 AND on_hand + :d >= reserved
    RETURNING sku, warehouse),
  l AS (
    INSERT INTO catalog.stock_movements (sku, warehouse, on_hand_delta, reserved_delta, kind, reason, actor)
    SELECT sku, warehouse, :d, 0, 'adjust', 'notify cost', 'pgbench' FROM s)$1
SELECT EXISTS (SELECT 1 FROM s)$2;
SQL
}
move "" "" >"$scripts/plain.sql"
move "" "" >"$scripts/changes.sql"
move "" ", (SELECT pg_notify('catalog_changes', sku) FROM s)" >"$scripts/notify.sql"

if [ "$(psql "$dsn" -tAc "SELECT count(*) FROM catalog.stock WHERE sku LIKE 'LOAD-%' AND warehouse = 'west'")" -lt "$skus" ]; then
  echo "the products LOAD-0001… are missing: run deploy/loadtest/run.sh once first" >&2
  exit 1
fi
kinds=(plain changes notify)
declare -A tps
for r in 1 2 3; do
  for k in "${kinds[@]}"; do
    triggers=()
    [ "$k" = changes ] || triggers=(PGOPTIONS="-c session_replication_role=replica")
    t=$(env "${triggers[@]}" pgbench -n -M prepared -c32 -j2 -T"${duration%s}" -f "$scripts/$k.sql" "$dsn" 2>&1 | awk '/^tps/ {print $3}')
    tps[$k]+="$t "
    printf 'round %d %-8s %8.0f tps\n' "$r" "$k" "$t"
  done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | sed -n 2p; }
p=$(median "${tps[plain]}") c=$(median "${tps[changes]}") n=$(median "${tps[notify]}")
awk -v p="$p" -v c="$c" -v n="$n" 'BEGIN {
  printf "median: the move %.0f tps; with its catalog.changes row %.0f tps (%.2fx); with a pg_notify instead %.0f tps (%.2fx)\n", p, c, c/p, n, n/p }'
