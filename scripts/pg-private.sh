# shellcheck shell=bash
# Picks the PostgreSQL server the tests use and exports LATCHKEY_TEST_PG (a base URL without a
# database; the tests append /<database>). Sourced by scripts/test; defines functions only.
#
# pg_select chooses, in order:
#   1. LATCHKEY_TEST_PG, if set, as is;
#   2. a server on 127.0.0.1:5432 that lets `postgres` in as superuser without a password;
#   3. a private, throwaway cluster: initdb (trust auth, superuser `postgres`) in a new directory
#      under ${TMPDIR:-/tmp}, listening on 127.0.0.1 only on its own port (54329 or the next free
#      one), its unix socket inside that directory. If no server binaries are found it first
#      installs Debian's postgresql package through the caller's apt_install function. As root it
#      runs as `postgres` (or a system user `latchkey-pg` it creates), since PostgreSQL refuses
#      to run as root. pg_private_stop stops it and removes the directory: call it from an EXIT
#      trap set before pg_select.
# No existing cluster's settings or pg_hba.conf are read or changed.
# LATCHKEY_TEST_PG_PRIVATE=1 skips 1 and 2: always a private cluster.

PG_PRIVATE_DIR=  # the private cluster's directory, once made
PG_PRIVATE_USER= # the account the private cluster runs as (empty: this one)
PG_PRIVATE_BIN=  # the directory holding initdb and pg_ctl

# True if postgres@127.0.0.1:5432 is a superuser reachable with no password at all (no prompt,
# no PGPASSWORD, no ~/.pgpass).
pg_local_ok() {
  command -v psql >/dev/null 2>&1 || return 1
  local super
  super=$(PGCONNECT_TIMEOUT=3 PGPASSFILE=/dev/null env -u PGPASSWORD \
    psql -X -w -At "postgres://postgres@127.0.0.1:5432/postgres" \
    -c "SELECT rolsuper FROM pg_roles WHERE rolname = current_user" 2>/dev/null) || return 1
  [ "$super" = t ]
}

# The directory of the newest server binaries (Debian's layout first, then PATH).
pg_server_bin() {
  local initdb
  initdb=$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)
  if [ ! -x "$initdb" ]; then initdb=$(command -v initdb 2>/dev/null) || return 1; fi
  [ -x "$(dirname "$initdb")/pg_ctl" ] || return 1
  dirname "$initdb"
}

# Runs a command as the private cluster's owner, from its directory.
pg_as_owner() {
  if [ -n "$PG_PRIVATE_USER" ]; then
    (cd "$PG_PRIVATE_DIR" && runuser -u "$PG_PRIVATE_USER" -- "$@")
  else
    "$@"
  fi
}

# True if something accepts connections on 127.0.0.1:$1.
pg_port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pg_private_start() {
  local port log
  if ! PG_PRIVATE_BIN=$(pg_server_bin); then
    if ! declare -F apt_install >/dev/null; then
      echo "PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's postgresql package" >&2
      return 1
    fi
    echo "PostgreSQL server binaries not found; installing Debian's postgresql package" >&2
    apt_install postgresql || return 1
    PG_PRIVATE_BIN=$(pg_server_bin) || { echo "initdb not found after installing postgresql" >&2; return 1; }
  fi

  if [ "$(id -u)" = 0 ]; then
    PG_PRIVATE_USER=postgres
    if ! id -u postgres >/dev/null 2>&1; then
      PG_PRIVATE_USER=latchkey-pg
      id -u latchkey-pg >/dev/null 2>&1 ||
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
          --shell /usr/sbin/nologin latchkey-pg || return 1
    fi
  fi

  # A directory the owner can write; $TMPDIR may not be reachable by `postgres` (e.g. under /root).
  local base
  for base in "${TMPDIR:-/tmp}" /tmp; do
    PG_PRIVATE_DIR=$(mktemp -d "$base/latchkey-pg.XXXXXX") || { PG_PRIVATE_DIR=; continue; }
    [ -z "$PG_PRIVATE_USER" ] && break
    chown "$PG_PRIVATE_USER:" "$PG_PRIVATE_DIR" &&
      runuser -u "$PG_PRIVATE_USER" -- test -w "$PG_PRIVATE_DIR" && break
    rm -rf "$PG_PRIVATE_DIR"
    PG_PRIVATE_DIR=
  done
  if [ -z "$PG_PRIVATE_DIR" ]; then
    echo "no temp directory for a private PostgreSQL${PG_PRIVATE_USER:+ writable by $PG_PRIVATE_USER}" >&2
    return 1
  fi

  echo "starting a private PostgreSQL for the tests in $PG_PRIVATE_DIR" >&2
  if ! pg_as_owner "$PG_PRIVATE_BIN/initdb" -D "$PG_PRIVATE_DIR/data" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C --no-sync >"$PG_PRIVATE_DIR/initdb.log" 2>&1; then
    echo "initdb failed:" >&2
    cat "$PG_PRIVATE_DIR/initdb.log" >&2
    return 1
  fi
  # This cluster's own configuration only; it is thrown away after the run.
  cat >>"$PG_PRIVATE_DIR/data/postgresql.conf" <<EOF

# scripts/test: a private, throwaway cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = '${PG_PRIVATE_DIR//\'/\'\'}'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

  log="$PG_PRIVATE_DIR/postgres.log"
  for port in $(seq 54329 54348); do
    pg_port_busy "$port" && continue
    rm -f "$log"
    if pg_as_owner "$PG_PRIVATE_BIN/pg_ctl" -D "$PG_PRIVATE_DIR/data" -l "$log" -o "-p $port" \
      -w -t 60 start >/dev/null; then
      export LATCHKEY_TEST_PG="postgres://postgres@127.0.0.1:$port"
      echo "PostgreSQL for the tests: $LATCHKEY_TEST_PG (private, removed after the run)" >&2
      return 0
    fi
    # Lost a race for the port: try the next one. Anything else: give up.
    grep -q 'could not bind\|Address already in use' "$log" 2>/dev/null || break
  done
  echo "the private PostgreSQL did not start; its log:" >&2
  cat "$log" >&2 2>/dev/null
  return 1
}

# Stops the private cluster, if any, and removes its directory. Never fails.
pg_private_stop() {
  [ -n "${PG_PRIVATE_DIR:-}" ] || return 0
  if [ -f "$PG_PRIVATE_DIR/data/postmaster.pid" ]; then
    pg_as_owner "$PG_PRIVATE_BIN/pg_ctl" -D "$PG_PRIVATE_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
      pg_as_owner "$PG_PRIVATE_BIN/pg_ctl" -D "$PG_PRIVATE_DIR/data" -m immediate -w stop >/dev/null 2>&1 ||
      true
  fi
  rm -rf "$PG_PRIVATE_DIR" || true
  PG_PRIVATE_DIR=
  return 0
}

pg_select() {
  if [ "${LATCHKEY_TEST_PG_PRIVATE:-}" != 1 ]; then
    if [ -n "${LATCHKEY_TEST_PG:-}" ]; then
      export LATCHKEY_TEST_PG
      echo "PostgreSQL for the tests: the one in LATCHKEY_TEST_PG" >&2
      return 0
    fi
    if pg_local_ok; then
      export LATCHKEY_TEST_PG="postgres://postgres@127.0.0.1:5432"
      echo "PostgreSQL for the tests: $LATCHKEY_TEST_PG" >&2
      return 0
    fi
    echo "no PostgreSQL on 127.0.0.1:5432 lets postgres in without a password (any there is left as is)" >&2
  fi
  pg_private_start
}

# Drops the lk_t_* databases a killed run left behind on LATCHKEY_TEST_PG. Never fails.
pg_sweep_test_databases() {
  command -v psql >/dev/null 2>&1 || return 0
  local url="$LATCHKEY_TEST_PG/postgres" db
  PGCONNECT_TIMEOUT=3 psql -X -w -At "$url" \
    -c "SELECT datname FROM pg_database WHERE datname LIKE 'lk\_t\_%'" 2>/dev/null |
    while read -r db; do
      PGCONNECT_TIMEOUT=3 psql -X -w -q "$url" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" \
        >/dev/null 2>&1 || true
    done || true
  return 0
}
