#!/usr/bin/env bash
# End-to-end stream benchmark: `pgcdc run` against `pg_recvlogical` (the walsender's own
# speed limit) on the same changes, on a throwaway local PostgreSQL.
#
#   bench/stream.sh [TRANSACTIONS]      (default 800: 500k inserts, 200k updates, 100k deletes)
#
# Prints changes/s for both, their ratio, CPU seconds and pgcdc's peak RSS; then the same
# changes into a DuckDB mirror and a PostgreSQL mirror (another database on the same
# server), each on its own slot over the same WAL.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
txs=${1:-800}
work=$(mktemp -d /tmp/pgcdc-bench-XXXX)
chmod 755 "$work"
DUCKDB_LIB_DIR=$(scripts/install-deps --no-python --no-s3 | sed -n 's/^DUCKDB_LIB_DIR=//p')
export DUCKDB_LIB_DIR
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
THROWAWAY_PG_CLEANUP="rm -rf '$work'"
. scripts/lib/throwaway-pg.sh
throwaway_pg "$work/pg" "max_wal_size = 4GB
shared_buffers = 512MB"

cargo build --release --quiet -p pgcdc --features duckdb
pgcdc=${CARGO_TARGET_DIR:-$root/target}/release/pgcdc

psql_ -c "CREATE TABLE orders (id bigint PRIMARY KEY, customer int, note text, amount numeric(12,2), placed timestamptz, attrs jsonb)"
cat > "$work/pgcdc.toml" <<TOML
[source]
url = "$url"
slot = "bench"
publication = "bench"
tables = ["orders"]
[destination]
url = "$work/lake"
TOML
"$pgcdc" -c "$work/pgcdc.toml" init --no-snapshot >/dev/null
sed -e 's/^slot = "bench"/slot = "bench_mirror"/' -e "s|^url = \"$work/lake\"|mode = \"mirror\"\nurl = \"$work/mirror.duckdb\"|" \
  "$work/pgcdc.toml" > "$work/mirror.toml"
"$pgcdc" -c "$work/mirror.toml" init --no-snapshot >/dev/null
psql_ -c "CREATE DATABASE mirror" >/dev/null
sed -e 's/^slot = "bench"/slot = "bench_pgmirror"/' -e "s|^url = \"$work/lake\"|mode = \"mirror\"\nurl = \"${url%/*}/mirror\"|" \
  "$work/pgcdc.toml" > "$work/pgmirror.toml"
"$pgcdc" -c "$work/pgmirror.toml" init --no-snapshot >/dev/null
psql_ -c "SELECT pg_create_logical_replication_slot('bench_recv', 'pgoutput')" >/dev/null

ins=$((500000 / txs)); upd=$((200000 / txs)); del=$((100000 / txs))
echo "workload: $txs transactions of $ins inserts, $upd updates, $del deletes"
python3 - "$txs" "$ins" "$upd" "$del" > "$work/workload.sql" <<'PY'
import sys
txs, ins, upd, dele = map(int, sys.argv[1:])
for t in range(txs):
    a = t * ins + 1
    print("BEGIN;")
    print(f"INSERT INTO orders SELECT g, g % 1000, 'order note ' || g, (g % 10000) * 0.01, '2024-01-01'::timestamptz + g * interval '1 s', jsonb_build_object('k', g, 'tags', jsonb_build_array('a', 'b')) FROM generate_series({a}, {a + ins - 1}) g;")
    print(f"UPDATE orders SET amount = amount + 1, note = note || '!' WHERE id BETWEEN {a} AND {a + upd - 1};")
    print(f"DELETE FROM orders WHERE id BETWEEN {a + ins - dele} AND {a + ins - 1};")
    print("COMMIT;")
PY
psql_ -f "$work/workload.sql" >/dev/null
end=$(psql_ -At -c "SELECT pg_current_wal_lsn()")
changes=$((txs * (ins + upd + del)))
echo "changes: $changes, WAL end $end"

t0=$(date +%s.%N)
/usr/bin/time -f "%e %U %S %M" -o "$work/recv.time" "$pgbin/pg_recvlogical" -d "$url" -S bench_recv --start --endpos="$end" \
  -o proto_version=3 -o publication_names=bench -o messages=true -o streaming=on -f /dev/null
/usr/bin/time -f "%e %U %S %M" -o "$work/pgcdc.time" "$pgcdc" -c "$work/pgcdc.toml" run > "$work/run.out" 2>"$work/run.err"
/usr/bin/time -f "%e %U %S %M" -o "$work/mirror.time" "$pgcdc" -c "$work/mirror.toml" run > "$work/mirror.out" 2>"$work/mirror.err"
/usr/bin/time -f "%e %U %S %M" -o "$work/pgmirror.time" "$pgcdc" -c "$work/pgmirror.toml" run > "$work/pgmirror.out" 2>"$work/pgmirror.err"
read -r g_wall g_user g_sys g_rss < "$work/pgmirror.time"
read -r r_wall r_user r_sys r_rss < "$work/recv.time"
read -r p_wall p_user p_sys p_rss < "$work/pgcdc.time"
read -r m_wall m_user m_sys m_rss < "$work/mirror.time"
cat "$work/run.out"
cat "$work/mirror.out" "$work/pgmirror.out"
mrows=$(psql -X -At -d "${url%/*}/mirror" -c "SELECT count(*) FROM pgcdc.orders")
srows=$(psql_ -At -c "SELECT count(*) FROM orders")
echo "rows: source $srows, PostgreSQL mirror $mrows"
python3 - <<PY
changes = $changes
rw, pw = $r_wall, $p_wall
print(f"| tool | wall s | changes/s | ratio | client CPU s | CPU s / M changes | peak RSS MiB |")
print(f"|---|---|---|---|---|---|---|")
print(f"| pg_recvlogical | {rw:.2f} | {changes/rw:,.0f} | 1.00 | {$r_user+$r_sys:.2f} | {($r_user+$r_sys)/changes*1e6:.2f} | {$r_rss/1024:.0f} |")
print(f"| pgcdc run | {pw:.2f} | {changes/pw:,.0f} | {rw/pw:.2f} | {$p_user+$p_sys:.2f} | {($p_user+$p_sys)/changes*1e6:.2f} | {$p_rss/1024:.0f} |")
mw = $m_wall
print(f"| pgcdc run, DuckDB mirror | {mw:.2f} | {changes/mw:,.0f} | {rw/mw:.2f} | {$m_user+$m_sys:.2f} | {($m_user+$m_sys)/changes*1e6:.2f} | {$m_rss/1024:.0f} |")
gw = $g_wall
print(f"| pgcdc run, PostgreSQL mirror | {gw:.2f} | {changes/gw:,.0f} | {rw/gw:.2f} | {$g_user+$g_sys:.2f} (+ server) | {($g_user+$g_sys)/changes*1e6:.2f} | {$g_rss/1024:.0f} |")
PY
