#!/usr/bin/env bash
# A throwaway PostgreSQL server for keyfolio's tests, started and stopped by
# ctest as the `postgres` fixture.
#
#   server.sh start DIR   # start a new server, write DIR/conninfo
#   server.sh stop DIR    # stop it, remove its files and DIR
#   server.sh pause DIR   # stop the server of DIR, keeping its files
#   server.sh resume DIR  # start it again
#
# With KEYFOLIO_TEST_POSTGRES set (a conninfo), the tests use that server and
# this script does nothing. The server's files go in a new private directory
# under /tmp (reachable by the `postgres` account whatever DIR's parents
# allow, and short enough for a socket path); it listens only on a Unix
# socket there. As root, it runs as the `postgres` account
# (initdb and postgres refuse to run as root). Besides the superuser, which
# connects without a password, it has a role `keyfolio_password` with the
# password `keyfolio-test-password`, which must give it, for the tests of a
# wrong password.
set -euo pipefail

# The server outlives this script: it must not inherit the descriptors of
# whoever started it (a lock file held by `flock ... ctest`, a pipe a test
# reads to its end), or it holds them until it stops.
for fd in /proc/$$/fd/*; do
  n=${fd##*/}
  [ "$n" -gt 2 ] 2>/dev/null && [ "$n" -ne 255 ] && eval "exec $n>&-" 2>/dev/null || true
done

action=${1:?usage: server.sh start|stop|pause|resume DIR}
dir=${2:?usage: server.sh start|stop|pause|resume DIR}

if [ -n "${KEYFOLIO_TEST_POSTGRES:-}" ]; then
  echo "postgres fixture: using KEYFOLIO_TEST_POSTGRES" >&2
  exit 0
fi

bindir=""
if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
  bindir=$(pg_config --bindir)
else
  for candidate in /usr/lib/postgresql/*/bin; do
    [ -x "$candidate/initdb" ] && bindir=$candidate
  done
fi
if [ -z "$bindir" ]; then
  echo "postgres fixture: no PostgreSQL server found (install the postgresql package:" \
       "cmake/install-dependencies.sh does), or set KEYFOLIO_TEST_POSTGRES to a conninfo" >&2
  exit 1
fi

as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || { echo "postgres fixture: running as root and there is no postgres account" >&2; exit 1; }
  as_owner=(runuser -u postgres --)
fi

stop() {
  if [ -f "$dir/location" ]; then
    local home
    home=$(cat "$dir/location")
    case "$home" in
      /tmp/keyfolio-pg.*)
        if [ -f "$home/data/postmaster.pid" ]; then
          "${as_owner[@]}" "$bindir/pg_ctl" -D "$home/data" -m immediate -w stop >/dev/null 2>&1 || true
        fi
        rm -rf "$home"
        ;;
    esac
  fi
  rm -rf "$dir"
}

home_of() {
  [ -f "$dir/location" ] || { echo "postgres fixture: no server in $dir" >&2; exit 1; }
  cat "$dir/location"
}

case "$action" in
  stop)
    stop
    ;;
  pause)
    home=$(home_of)
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$home/data" -m fast -w stop >/dev/null
    ;;
  resume)
    home=$(home_of)
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$home/data" -l "$home/server.log" -w -t 30 start >/dev/null
    ;;
  start)
    stop
    mkdir -p "$dir"
    home=$(mktemp -d /tmp/keyfolio-pg.XXXXXXXX)
    echo "$home" >"$dir/location"
    mkdir "$home/socket"
    chmod 700 "$home" "$home/socket"
    if [ ${#as_owner[@]} -gt 0 ]; then chown -R postgres "$home"; fi
    "${as_owner[@]}" "$bindir/initdb" -D "$home/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      >"$home/initdb.log" 2>&1 || { cat "$home/initdb.log" >&2; exit 1; }
    cat >"$home/data/pg_hba.conf" <<'HBA'
local all keyfolio_password scram-sha-256
local all all trust
HBA
    cat >>"$home/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$home/socket'
unix_socket_permissions = 0700
max_connections = 300
fsync = on
synchronous_commit = on
CONF
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$home/data" -l "$home/server.log" -w -t 30 start >/dev/null ||
      { cat "$home/server.log" >&2; exit 1; }
    "${as_owner[@]}" "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$home/socket" -U postgres -d postgres \
      -c "CREATE ROLE keyfolio_password LOGIN PASSWORD 'keyfolio-test-password'" \
      -c "CREATE DATABASE keyfolio_test" \
      -c "GRANT ALL ON DATABASE keyfolio_test TO keyfolio_password" >/dev/null
    echo "host=$home/socket user=postgres dbname=keyfolio_test" >"$dir/conninfo"
    echo "postgres fixture: server at $home/socket" >&2
    ;;
  *)
    echo "usage: server.sh start|stop|pause|resume DIR" >&2
    exit 2
    ;;
esac
