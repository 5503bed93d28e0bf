#!/usr/bin/env bash
# PostgreSQL and Redis for the cluster tests and benchmarks: a throwaway server of each, on their own
# ports and data directories, never the machine's own services.
#
#   scripts/cluster-services.sh start [DIR]   start both (DIR defaults to ${TMPDIR:-/tmp}/wallgate-services);
#                                             prints the variables the tests read, as `export` lines
#   scripts/cluster-services.sh stop [DIR]    stop both and remove DIR
#   scripts/cluster-services.sh check         exit 0 when both servers' programs are installed
#
# Ports: WALLGATE_TEST_PG_PORT (55432) and WALLGATE_TEST_REDIS_PORT (56379).
# PostgreSQL runs with fsync off: the data is a test's, and thrown away.
set -euo pipefail
cmd=${1:-}
dir=${2:-${TMPDIR:-/tmp}/wallgate-services}
pg_port=${WALLGATE_TEST_PG_PORT:-55432}
redis_port=${WALLGATE_TEST_REDIS_PORT:-56379}

pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$bin" ] && [ -x "$bin/initdb" ] && echo "$bin"
}

# PostgreSQL refuses to run as root: as root, its files and processes belong to the postgres user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  check)
    pg_bin >/dev/null && command -v redis-server >/dev/null
    ;;
  start)
    bin=$(pg_bin) || { echo "PostgreSQL is not installed (Debian: apt-get install postgresql)" >&2; exit 1; }
    command -v redis-server >/dev/null || { echo "Redis is not installed (Debian: apt-get install redis-server)" >&2; exit 1; }
    # A port already taken would make the start look good while the tests talked to someone else's server.
    for port in "$pg_port" "$redis_port"; do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port on 127.0.0.1 is in use: choose others with WALLGATE_TEST_PG_PORT / WALLGATE_TEST_REDIS_PORT" >&2
        exit 1
      fi
    done
    mkdir -p "$dir/pg" "$dir/redis"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir" "$dir/pg"; fi
    if [ ! -f "$dir/pg/PG_VERSION" ]; then
      as_pg "$bin/initdb" -D "$dir/pg" -U wallgate --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    as_pg "$bin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w -t 60 start \
      -o "-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null ||
      { cat "$dir/pg.log" >&2; exit 1; }
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir/redis" --daemonize yes \
      --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save '' --appendonly no >/dev/null
    for _ in $(seq 1 100); do
      redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    redis-cli -p "$redis_port" ping >/dev/null || { cat "$dir/redis.log" >&2; exit 1; }
    echo "export WALLGATE_TEST_PG_URL=postgres://wallgate@127.0.0.1:$pg_port/postgres"
    echo "export WALLGATE_TEST_REDIS_URL=redis://127.0.0.1:$redis_port"
    ;;
  stop)
    if bin=$(pg_bin) && [ -f "$dir/pg/postmaster.pid" ]; then
      as_pg "$bin/pg_ctl" -D "$dir/pg" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [ -f "$dir/redis.pid" ]; then
      # By its pid file, not the port: a stop without the start's WALLGATE_TEST_REDIS_PORT shut down
      # whatever Redis held the default port, another directory's. Started with --save '', it saves nothing.
      pid=$(cat "$dir/redis.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop|check [DIR]" >&2
    exit 2
    ;;
esac
