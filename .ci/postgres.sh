#!/usr/bin/env bash
# Start a throwaway PostgreSQL for the ledger tests and print the line that points them at it:
#   eval "$(bash .ci/postgres.sh)"   ->   export JOULEMETER_TEST_POSTGRES_URL=postgresql://…
# Installs Debian's postgresql if missing. The cluster lives in a temp dir, listens on
# 127.0.0.1 only, on a free port, with trust auth. Everything but the export line goes to
# stderr. Stop it with: pg_ctl -D "$JOULEMETER_TEST_POSTGRES_DIR" stop (run as its owner).
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

bin_dir="$(find_bin)"
if [[ -z "$bin_dir" || ! -x "$bin_dir/initdb" ]]; then
    log "installing Debian's postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q postgresql >&2 || { apt-get update -q >&2 && apt-get install -y -q postgresql >&2; }
    bin_dir="$(find_bin)"
fi

# The server refuses to run as root: run it as the postgres user when we are root.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

data_dir="$(mktemp -d /tmp/joulemeter-pg.XXXXXX)"
if [[ "$(id -u)" == 0 ]]; then chown postgres: "$data_dir"; fi
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

as_owner "$bin_dir/initdb" -D "$data_dir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >&2
as_owner "$bin_dir/pg_ctl" -D "$data_dir/data" -l "$data_dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $data_dir -c fsync=off" start >&2 \
    || { cat "$data_dir/server.log" >&2; exit 1; }
as_owner "$bin_dir/createdb" -h 127.0.0.1 -p "$port" -U postgres joulemeter_test >&2

log "PostgreSQL running on 127.0.0.1:$port, data in $data_dir/data"
echo "export JOULEMETER_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:$port/joulemeter_test JOULEMETER_TEST_POSTGRES_DIR=$data_dir/data"
