#!/bin/sh
# Run a command with MAPSERVICE_TEST_POSTGIS_URL pointing at a PostgreSQL server with PostGIS.
#  1. MAPSERVICE_TEST_POSTGIS_URL already set: use it.
#  2. A server on 127.0.0.1:5432 accepts a trust login as postgres and offers PostGIS: use it.
#  3. Otherwise start a throwaway cluster (as the postgres user, on a free port, in a temp dir)
#     and stop and remove it afterwards.
set -eu
if [ -n "${MAPSERVICE_TEST_POSTGIS_URL:-}" ]; then
    exec "$@"
fi
if psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAc \
        "select 1 from pg_available_extensions where name = 'postgis'" 2>/dev/null | grep -q 1; then
    MAPSERVICE_TEST_POSTGIS_URL="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    export MAPSERVICE_TEST_POSTGIS_URL
    exec "$@"
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
dir=$(mktemp -d /tmp/mapservice-pg.XXXXXX)
chown postgres "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
    (cd / && runuser -u postgres -- "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1) || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
(cd / && runuser -u postgres -- "$bindir/initdb" -D "$dir/data" -U postgres -A trust >/dev/null)
(cd / && runuser -u postgres -- "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null)
echo "started a throwaway PostgreSQL on 127.0.0.1:$port"
MAPSERVICE_TEST_POSTGIS_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
export MAPSERVICE_TEST_POSTGIS_URL
"$@"
