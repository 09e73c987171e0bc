#!/usr/bin/env bash
# End-to-end stream benchmark: `pgcdc run` against `pg_recvlogical` (the walsender's own
# speed limit) on the same changes, on a throwaway local PostgreSQL.
#
#   bench/stream.sh [TRANSACTIONS] [WORKLOAD]
#
# WORKLOAD mixed (default): 800k changes (500k inserts, 200k updates, 100k deletes) in
#   TRANSACTIONS (default 800) transactions, 70% into `orders` (bigint, int, text,
#   numeric(12,2), timestamptz, jsonb), 30% into the narrow `events` (bigint, int);
#   `bench/stream.sh 1` makes it one transaction (streamed in progress by the server).
# WORKLOAD wide: 100k changes of rows with an 8 KB TOASTed text (stored out of line):
#   50k inserts, 30k updates leaving it unchanged, 10k updates changing it, 10k deletes.
# WORKLOAD moves: 300 inserts of 8 KB rows (TOASTed, out of line), then one transaction
#   changing the key of each (300 key changes that keep the TOASTed value: each a delete
#   and an update, a separate step of a mirror's merge).
# CHANGES=N scales the mixed workload (e.g. CHANGES=1000000 bench/stream.sh 1).
# ONLY=<tool> runs pg_recvlogical (the baseline) and one tool: sql, stream, duckdb,
#   postgres or delta (no SQL-interface rows and no chart then).
# PGCDC=<binary> runs that pgcdc binary instead of building one, e.g. to compare two
#   builds: PGCDC=old/pgcdc ONLY=delta bench/stream.sh 1 moves.
# PGCDC_SET="key=value …" adds `--set key=value` to every pgcdc run, e.g.
#   PGCDC_SET=source.binary=false ONLY=stream bench/stream.sh to read text pgoutput.
#
# Prints changes/s, the ratio to pg_recvlogical, client and server CPU seconds and peak
# RSS for: pg_recvlogical; pgcdc run reading SQL pages (source.reader = "sql") and reading
# the stream ("stream"); the same changes into a DuckDB, a PostgreSQL (another database on
# the same server) and a Delta Lake mirror; and the SQL interface alone to /dev/null —
# each on its own slot over the same WAL.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
txs=${1:-800}
workload=${2:-mixed}
case "$workload" in mixed|wide|moves) ;; *) echo "unknown workload $workload (mixed, wide, moves)" >&2; exit 2 ;; esac
only=${ONLY:-}
case "$only" in ''|sql|stream|duckdb|postgres|delta) ;; *) echo "unknown ONLY=$only (sql, stream, duckdb, postgres, delta)" >&2; exit 2 ;; esac
# want TOOL: whether this run includes TOOL.
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }
work=$(mktemp -d /tmp/pgcdc-bench-XXXX)
chmod 755 "$work"
DUCKDB_LIB_DIR=$(scripts/install-deps --no-python --no-s3 | sed -n 's/^DUCKDB_LIB_DIR=//p')
export DUCKDB_LIB_DIR
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
THROWAWAY_PG_CLEANUP="rm -rf '$work'"
. scripts/lib/throwaway-pg.sh
throwaway_pg "$work/pg" "max_wal_size = 4GB
shared_buffers = 512MB"

# DELTA=0 leaves the Delta mirror out (its deltalake build takes ~10 minutes once).
delta=${DELTA:-1}
want delta || delta=0
if [ -n "${PGCDC:-}" ]; then
  pgcdc=$(realpath "$PGCDC")
else
  cargo build --release --quiet -p pgcdc --features "duckdb$([ "$delta" = 1 ] && echo ,delta)"
  pgcdc=${CARGO_TARGET_DIR:-$root/target}/release/pgcdc
fi

psql_ -c "CREATE TABLE orders (id bigint PRIMARY KEY, customer int, note text, amount numeric(12,2), placed timestamptz, attrs jsonb)" \
  -c "CREATE TABLE events (id bigint PRIMARY KEY, n int)" \
  -c "CREATE TABLE docs (id bigint PRIMARY KEY, title text, body text)" \
  -c "ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL"
cat > "$work/pgcdc.toml" <<TOML
[source]
url = "$url"
slot = "bench"
publication = "bench"
tables = ["orders", "events", "docs"]
[destination]
url = "$work/lake"
TOML
"$pgcdc" -c "$work/pgcdc.toml" init --no-snapshot >/dev/null
sed -e 's/^slot = "bench"/slot = "bench_mirror"/' -e "s|^url = \"$work/lake\"|mode = \"mirror\"\nurl = \"$work/mirror.duckdb\"|" \
  "$work/pgcdc.toml" > "$work/mirror.toml"
# Only the tools that run are set up (a build without duckdb can run ONLY=stream).
if want duckdb; then "$pgcdc" -c "$work/mirror.toml" init --no-snapshot >/dev/null; fi
psql_ -c "CREATE DATABASE mirror" >/dev/null
sed -e 's/^slot = "bench"/slot = "bench_pgmirror"/' -e "s|^url = \"$work/lake\"|mode = \"mirror\"\nurl = \"${url%/*}/mirror\"|" \
  "$work/pgcdc.toml" > "$work/pgmirror.toml"
if want postgres; then "$pgcdc" -c "$work/pgmirror.toml" init --no-snapshot >/dev/null; fi
if [ "$delta" = 1 ]; then
  sed -e 's/^slot = "bench"/slot = "bench_delta"/' -e "s|^url = \"$work/lake\"|mode = \"mirror\"\nurl = \"delta:$work/delta\"|" \
    "$work/pgcdc.toml" > "$work/delta.toml"
  "$pgcdc" -c "$work/delta.toml" init --no-snapshot >/dev/null
fi
# The same changelog run reading the replication stream instead of SQL pages.
sed -e 's/^slot = "bench"/slot = "bench_stream"\nreader = "stream"/' -e "s|^url = \"$work/lake\"|url = \"$work/lake_stream\"|" \
  "$work/pgcdc.toml" > "$work/stream.toml"
"$pgcdc" -c "$work/stream.toml" init --no-snapshot >/dev/null
psql_ -c "SELECT pg_create_logical_replication_slot('bench_recv', 'pgoutput')" >/dev/null
psql_ -c "SELECT pg_create_logical_replication_slot('bench_peek', 'pgoutput')" >/dev/null

python3 - "$workload" "$txs" "${CHANGES:-800000}" > "$work/workload.sql" 2> "$work/changes" <<'PY'
import os, sys
workload, txs, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
changes = 0
if workload == "moves":
    n = 300
    print(f"-- {n} inserts of 8 KB rows, then {n} key changes keeping the TOASTed value in one transaction", file=sys.stderr)
    # 8 KB of distinct hex digits per row: Parquet's compression does not shrink it away.
    print(f"INSERT INTO docs SELECT g, 'doc ' || g, (SELECT string_agg(md5(g::text || '.' || i::text), '') FROM generate_series(1, 256) i) FROM generate_series(1, {n}) g;")
    print("UPDATE docs SET id = id + 1000000;")
    changes = 3 * n
elif workload == "mixed":
    ins, upd, dele = total * 5 // 8 // txs, total * 2 // 8 // txs, total // 8 // txs
    print(f"-- {txs} transactions of {ins} inserts, {upd} updates, {dele} deletes (70% orders, 30% events)", file=sys.stderr)
    for t in range(txs):
        print("BEGIN;")
        for table, share in (("orders", 7), ("events", 3)):
            i, u, d = ins * share // 10, upd * share // 10, dele * share // 10
            a = t * ins + 1
            if table == "orders":
                print(f"INSERT INTO orders SELECT g, g % 1000, 'order note ' || g, (g % 10000) * 0.01, '2024-01-01'::timestamptz + g * interval '1 s', jsonb_build_object('k', g, 'tags', jsonb_build_array('a', 'b')) FROM generate_series({a}, {a + i - 1}) g;")
                print(f"UPDATE orders SET amount = amount + 1, note = note || '!' WHERE id BETWEEN {a} AND {a + u - 1};")
            else:
                print(f"INSERT INTO events SELECT g, g % 97 FROM generate_series({a}, {a + i - 1}) g;")
                print(f"UPDATE events SET n = n + 1 WHERE id BETWEEN {a} AND {a + u - 1};")
            print(f"DELETE FROM {table} WHERE id BETWEEN {a + i - d} AND {a + i - 1};")
            changes += i + u + d
        print("COMMIT;")
else:
    n = 50000
    print(f"-- {n} inserts of 8 KB rows, {3 * n // 5} updates keeping the TOASTed value, {n // 5} changing it, {n // 5} deletes, in {n // 500} transactions", file=sys.stderr)
    for t in range(n // 500):
        a = t * 500 + 1
        print("BEGIN;")
        print(f"INSERT INTO docs SELECT g, 'doc ' || g, repeat(md5(g::text), 256) FROM generate_series({a}, {a + 499}) g;")
        print(f"UPDATE docs SET title = title || '!' WHERE id BETWEEN {a} AND {a + 299};")
        print(f"UPDATE docs SET body = repeat(md5((id + 1)::text), 256) WHERE id BETWEEN {a + 300} AND {a + 399};")
        print(f"DELETE FROM docs WHERE id BETWEEN {a + 400} AND {a + 499};")
        print("COMMIT;")
        changes += 1000
print(changes, file=sys.stderr)
PY
echo "workload $workload: $(head -n 1 "$work/changes")"
psql_ -f "$work/workload.sql" >/dev/null
end=$(psql_ -At -c "SELECT pg_current_wal_lsn()")
changes=$(tail -n 1 "$work/changes")
echo "changes: $changes, WAL end $end"

# CPU seconds the server has used so far: its live processes plus the children it reaped
# (a walsender or backend that served one tool counts once it exits).
postmaster=$(head -n 1 "$work/pg/data/postmaster.pid")
server_cpu() {
  python3 - "$postmaster" <<'PY'
import os, sys
pm, hz, total = int(sys.argv[1]), os.sysconf("SC_CLK_TCK"), 0
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        st = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    if int(p) == pm:
        total += sum(int(x) for x in st[11:15])
    elif int(st[1]) == pm:
        total += int(st[11]) + int(st[12])
print(total / hz)
PY
}
# timed NAME CMD...: wall/user/sys/RSS into $work/NAME.time, server CPU into $work/NAME.server.
timed() {
  local name=$1 before
  shift
  before=$(server_cpu)
  /usr/bin/time -f "%e %U %S %M" -o "$work/$name.time" "$@"
  sleep 0.2
  python3 -c "print(round($(server_cpu) - $before, 2))" > "$work/$name.server"
}
t0=$(date +%s.%N)
timed recv "$pgbin/pg_recvlogical" -d "$url" -S bench_recv --start --endpos="$end" \
  -o proto_version=3 -o publication_names=bench -o messages=true -o streaming=on -f /dev/null
touch "$work/run.out" "$work/mirror.out" "$work/pgmirror.out" "$work/delta.out"
sets=()
for kv in ${PGCDC_SET:-}; do sets+=(--set "$kv"); done
if want sql; then timed pgcdc "$pgcdc" -c "$work/pgcdc.toml" "${sets[@]}" --set source.reader=sql run > "$work/run.out" 2>"$work/run.err"; fi
if want stream; then timed stream "$pgcdc" -c "$work/stream.toml" "${sets[@]}" run > "$work/stream.out" 2>"$work/stream.err"; fi
if want duckdb; then timed mirror "$pgcdc" -c "$work/mirror.toml" "${sets[@]}" run > "$work/mirror.out" 2>"$work/mirror.err"; fi
if [ "$delta" = 1 ]; then timed delta "$pgcdc" -c "$work/delta.toml" "${sets[@]}" run > "$work/delta.out" 2>"$work/delta.err"; fi
if want postgres; then timed pgmirror "$pgcdc" -c "$work/pgmirror.toml" "${sets[@]}" run > "$work/pgmirror.out" 2>"$work/pgmirror.err"; fi
if [ -n "$only" ]; then
  cat "$work/run.out" "$work/mirror.out" "$work/pgmirror.out" "$work/delta.out"
  python3 - "$work" "$changes" "$only" <<'PY'
import sys
work, changes, only = sys.argv[1], int(sys.argv[2]), sys.argv[3]
name = {"sql": "pgcdc", "duckdb": "mirror", "postgres": "pgmirror"}.get(only, only)
for label, n in (("pg_recvlogical", "recv"), (f"pgcdc run ({only})", name)):
    wall, user, sys_, rss = open(f"{work}/{n}.time").read().split()
    print(f"{label}: {float(wall):.2f} s wall, {changes / float(wall):,.0f} changes/s, {float(user) + float(sys_):.2f} CPU s, {int(rss) / 1024:.0f} MiB peak RSS")
PY
  exit 0
fi
read -r g_wall g_user g_sys g_rss < "$work/pgmirror.time"
# The SQL interface over the same WAL, to /dev/null: peek (nothing consumed) decodes the
# changes in the backend and returns them as rows of one COPY, without the walsender's
# per-message protocol.
timed peek psql -X -q -d "$url" -c "COPY (SELECT lsn, xid, data FROM pg_logical_slot_peek_binary_changes('bench_peek', '$end', NULL, 'proto_version', '1', 'publication_names', 'bench')) TO STDOUT (FORMAT binary)" > /dev/null
read -r k_wall k_user k_sys k_rss < "$work/peek.time"
# The same with the tuplestore of the peek in memory instead of a temporary file.
timed peekmem psql -X -q -d "$url" -c "SET work_mem = '1GB'" -c "COPY (SELECT lsn, xid, data FROM pg_logical_slot_peek_binary_changes('bench_peek', '$end', NULL, 'proto_version', '1', 'publication_names', 'bench')) TO STDOUT (FORMAT binary)" > /dev/null
read -r q_wall q_user q_sys q_rss < "$work/peekmem.time"
read -r r_wall r_user r_sys r_rss < "$work/recv.time"
read -r p_wall p_user p_sys p_rss < "$work/pgcdc.time"
read -r m_wall m_user m_sys m_rss < "$work/mirror.time"
read -r s_wall s_user s_sys s_rss < "$work/stream.time"
cat "$work/run.out"
cat "$work/mirror.out" "$work/pgmirror.out"
[ "$delta" = 1 ] && cat "$work/delta.out"
for t in orders events docs; do
  s_n=$(psql_ -At -c "SELECT count(*) FROM $t")
  m_n=$(psql -X -At -d "${url%/*}/mirror" -c "SELECT count(*) FROM pgcdc.$t" 2>/dev/null || echo 0)
  echo "rows in $t: source $s_n, PostgreSQL mirror $m_n"
done
python3 - "$work" "$changes" <<'PY'
import os, sys
work, changes = sys.argv[1], int(sys.argv[2])
def read(name):
    wall, user, sys_, rss = open(f"{work}/{name}.time").read().split()
    server = float(open(f"{work}/{name}.server").read())
    return float(wall), float(user) + float(sys_), int(rss) / 1024, server
rows = [
    ("pg_recvlogical", "recv", ""),
    ("pgcdc run, reader = stream", "stream", ""),
    ("pgcdc run, reader = sql (pages)", "pgcdc", ""),
    ("pgcdc run, DuckDB mirror", "mirror", ""),
    ("pgcdc run, PostgreSQL mirror", "pgmirror", " (+ mirror's server)"),
    ("pgcdc run, Delta Lake mirror (local disk)", "delta", ""),
    ("SQL interface (peek → COPY → /dev/null)", "peek", " (psql)"),
    ("SQL interface, work_mem = 1GB", "peekmem", " (psql)"),
]
rows = [r for r in rows if os.path.exists(f"{work}/{r[1]}.time")]
base = read("recv")[0]
print("| tool | wall s | changes/s | ratio | client CPU s | CPU s / M changes | server CPU s | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|")
for label, name, note in rows:
    wall, cpu, rss, server = read(name)
    print(f"| {label} | {wall:.2f} | {changes / wall:,.0f} | {base / wall:.2f} | {cpu:.2f}{note} | {cpu / changes * 1e6:.2f} | {server:.2f} | {rss:.0f} |")
pages, peek = read("pgcdc")[0], read("peek")[0]
print(f"\npgcdc run with SQL pages against the SQL interface to /dev/null: {peek / pages:.2f}")
PY

# The chart (matplotlib in a venv of its own, made once).
chart_py=$HOME/.cache/pgcdc/bench-venv/bin/python
if ! "$chart_py" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$HOME/.cache/pgcdc/bench-venv" && "$chart_py" -m pip install -q matplotlib
fi
chart=bench/results/stream-$workload-${txs}tx.png
delta_bar=()
[ "$delta" = 1 ] && delta_bar=("Delta mirror=$(cut -d' ' -f1 "$work/delta.time")")
"$chart_py" bench/chart.py "$chart" "$workload: $changes changes in $txs transactions" \
  "pg_recvlogical=$r_wall" "pgcdc, stream=$s_wall" "pgcdc, SQL pages=$p_wall" "DuckDB mirror=$m_wall" "PostgreSQL mirror=$g_wall" \
  "${delta_bar[@]}" "$changes"
echo "chart: $chart"
