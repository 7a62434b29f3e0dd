#!/bin/sh
# A PostgreSQL server configured as docs/deployment.md recommends, for the benchmarks:
#   bench/tuned-postgres.sh start   -> prints the URL for MAPSERVICE_BENCH_POSTGIS_URL
#   bench/tuned-postgres.sh stop
# The project's test server runs with PostgreSQL's defaults (shared_buffers 128 MB), far below
# a 1M-resource table (~1.9 GB); production is sized for its data. This cluster lives in
# bench/out/pg (gitignored), listens on 127.0.0.1:${BENCH_PG_PORT:-5499} and keeps its data
# between runs (a loaded 1M database can be measured again with --reuse).
set -eu
cd "$(dirname "$0")/.."
dir="$(pwd)/bench/out/pg"
port="${BENCH_PG_PORT:-5499}"
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
as_pg() { (cd / && runuser -u postgres -- "$@"); }
case "${1:-}" in
start)
    url="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
    if psql -w -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1
    then
        echo "$url"  # already running (e.g. started from another checkout)
        exit 0
    fi
    mkdir -p "$dir"
    chown postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_pg "$bindir/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
    fi
    if ! as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        # deployment.md: shared_buffers 25 % of memory, the cache the planner may count on
        # 50 %, a max_wal_size that spares a million-row import its checkpoints
        as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w start -o "-p $port -k $dir \
            -c listen_addresses=127.0.0.1 -c shared_buffers=$((mem_kb / 4))kB \
            -c effective_cache_size=$((mem_kb / 2))kB -c max_wal_size=4GB \
            -c random_page_cost=1.1" >/dev/null
    fi
    echo "$url"
    ;;
stop)
    as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
