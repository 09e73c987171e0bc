#!/usr/bin/env bash
# Snapshot benchmark: `pgcdc init` (initial snapshot) of a 1M-row table with 1, 2 and 4
# workers, beside `COPY … TO STDOUT (FORMAT binary) > /dev/null` (and text COPY) measured
# in the same run on the same table.
#
#   bench/snapshot.sh [ROWS]        (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rows=${1:-1000000}
work=$(mktemp -d /tmp/pgcdc-bench-XXXX)
chmod 755 "$work"
scripts/install-deps --no-python --no-s3 >/dev/null
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
THROWAWAY_PG_CLEANUP="rm -rf '$work'"
. scripts/lib/throwaway-pg.sh
throwaway_pg "$work/pg" "max_wal_size = 4GB
shared_buffers = 512MB"
cargo build --release --quiet -p pgcdc
pgcdc=${CARGO_TARGET_DIR:-$root/target}/release/pgcdc

psql_ -c "CREATE TABLE orders (id bigint PRIMARY KEY, customer int, note text, amount numeric(12,2), placed timestamptz, attrs jsonb)"
psql_ -c "INSERT INTO orders SELECT g, g % 1000, 'order note ' || g, (g % 10000) * 0.01, '2024-01-01'::timestamptz + g * interval '1 s', jsonb_build_object('k', g, 'tags', jsonb_build_array('a', 'b')) FROM generate_series(1, $rows) g"
psql_ -c "VACUUM ANALYZE orders"
bytes=$(psql_ -At -c "SELECT pg_table_size('orders')")
echo "table: $rows rows, $((bytes / 1048576)) MiB"

timed() { /usr/bin/time -f "%e %U %S %M" -o "$work/t" "$@" > /dev/null; cat "$work/t"; }
read -r cb _ _ _ < <(timed psql -X -q -d "$url" -c "COPY (SELECT * FROM orders) TO STDOUT (FORMAT binary)")
read -r ct _ _ _ < <(timed psql -X -q -d "$url" -c "COPY (SELECT * FROM orders) TO STDOUT")
echo "| reader | workers | wall s | rows/s | MB/s (table) | ratio to binary COPY | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|"
python3 -c "r=$rows;b=$bytes;w=$cb;print(f'| COPY binary > /dev/null | 1 | {w:.2f} | {r/w:,.0f} | {b/w/1e6:.0f} | 1.00 | - |')"
python3 -c "r=$rows;b=$bytes;w=$ct;print(f'| COPY text > /dev/null | 1 | {w:.2f} | {r/w:,.0f} | {b/w/1e6:.0f} | {$cb/w:.2f} | - |')"
for workers in 1 2 4; do
  cat > "$work/pgcdc.toml" <<TOML
[source]
url = "$url"
slot = "bench"
publication = "bench"
tables = ["orders"]
[destination]
url = "$work/lake_$workers"
[snapshot]
workers = $workers
TOML
  read -r w _ _ m < <(timed "$pgcdc" -c "$work/pgcdc.toml" init --reset)
  python3 -c "r=$rows;b=$bytes;w=$w;print(f'| pgcdc init | $workers | {w:.2f} | {r/w:,.0f} | {b/w/1e6:.0f} | {$cb/w:.2f} | {$m/1024:.0f} |')"
done
