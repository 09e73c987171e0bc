# Sourced by scripts/demo and bench/*.sh: starts a throwaway PostgreSQL with
# wal_level=logical on a free 127.0.0.1 port in directory $1 (extra postgresql.conf lines
# in $2), stops it on exit. Sets: pgbin, url, psql_ (a psql function), as_pg.
throwaway_pg() {
  local dir=$1 extra=${2:-}
  pgbin=${PGCDC_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
  [ -x "$pgbin/initdb" ] || { echo "no PostgreSQL server binaries found (scripts/install-deps)" >&2; return 1; }
  as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as_pg "$pgbin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null
  printf '%s\n' "wal_level = logical" "listen_addresses = '127.0.0.1'" "port = $port" \
    "unix_socket_directories = '$dir'" "max_replication_slots = 10" "max_wal_senders = 10" "$extra" \
    >> "$dir/data/postgresql.conf"
  as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
  # shellcheck disable=SC2064
  trap "as_pg '$pgbin/pg_ctl' -D '$dir/data' stop -m immediate >/dev/null 2>&1 || true; ${THROWAWAY_PG_CLEANUP:-true}" EXIT
  url="postgresql://postgres@127.0.0.1:$port/postgres"
  psql_() { psql -X -q -v ON_ERROR_STOP=1 -d "$url" "$@"; }
}
