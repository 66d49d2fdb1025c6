#!/usr/bin/env bash
# Starts the real engines the tests can use, each on a free loopback port
# with its data in a temporary directory:
#   PostgreSQL 15 (initdb + pg_ctl)   -> CASA_TEST_POSTGRES_DSN
#   MariaDB 10.11 (mariadbd)          -> CASA_TEST_MYSQL_DSN
#   SeaweedFS (weed server -s3)       -> CASA_TEST_S3_ENDPOINT, CASA_TEST_S3_BUCKET,
#                                        CASA_TEST_S3_ACCESS_KEY, CASA_TEST_S3_SECRET_KEY
#     (with one identity in -s3.config, so that it checks every request's
#     SigV4 signature, presigned URLs included, and refuses anonymous ones)
# and prints the export lines on stdout (progress goes to stderr).
#
#   eval "$(.ci/start-servers.sh start)"    # start all, export the variables
#   go test ./migrate/sqlmigrator/ ./cas/s3store/
#   .ci/start-servers.sh stop "$CASA_SERVERS_DIR"
#
# CASA_SERVERS="postgres mysql s3" (the default) chooses which to start.
# Installing the packages and building weed is .ci/run's job (and
# .ci/build-weed.sh's); this script only uses what is installed.
set -euo pipefail

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
S3_BUCKET="${CASA_TEST_S3_BUCKET:-casa-test}"
S3_ACCESS_KEY="${CASA_TEST_S3_ACCESS_KEY:-AKIDCASATEST}"
S3_SECRET_KEY="${CASA_TEST_S3_SECRET_KEY:-SECRETCASATEST}"

log() { echo "start-servers: $*" >&2; }

# free_port prints a TCP port nothing listens on (not in use, not handed out
# earlier by this script).
declare -a taken=()
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    [[ " ${taken[*]-} " == *" $p "* ]] && continue
    ss -Hltn "sport = :$p" | grep -q . && continue
    taken+=("$p")
    echo "$p"
    return
  done
}

# wait_for CMD... retries CMD for up to 60 s.
wait_for() {
  local i
  for i in $(seq 1 120); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  return 1
}

# as_user USER CMD...: runs CMD as USER when root (PostgreSQL refuses to run
# as root), as the current user otherwise.
as_user() {
  local u=$1
  shift
  if [[ $(id -u) == 0 ]]; then runuser -u "$u" -- "$@"; else "$@"; fi
}

start_postgres() {
  local d="$DIR/pg" port
  port=$(free_port)
  mkdir -p "$d"
  [[ $(id -u) == 0 ]] && chown postgres: "$d"
  as_user postgres "$PG_BIN/initdb" -D "$d/data" -U casa -A trust --no-sync -E UTF8 --locale=C.UTF-8 >"$d/initdb.log"
  as_user postgres "$PG_BIN/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $d -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null
  as_user postgres "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U casa casa_test
  echo "$port" >"$d/port"
  EXPORTS+=("CASA_TEST_POSTGRES_DSN=postgres://casa@127.0.0.1:$port/casa_test?sslmode=disable")
  log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

start_mysql() {
  local d="$DIR/mysql" port user=()
  port=$(free_port)
  mkdir -p "$d"
  if [[ $(id -u) == 0 ]]; then
    chown mysql: "$d"
    user=(--user=mysql)
  fi
  mariadb-install-db --no-defaults "${user[@]}" --datadir="$d/data" --auth-root-authentication-method=socket \
    --skip-test-db --skip-name-resolve >"$d/install.log" 2>&1
  mariadbd --no-defaults "${user[@]}" --datadir="$d/data" --socket="$d/mysqld.sock" --port="$port" \
    --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$d/mysqld.pid" --log-error="$d/error.log" \
    --innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0 --innodb-buffer-pool-size=64M \
    --max-connections=200 >/dev/null 2>&1 &
  echo $! >"$d/launcher.pid"
  if ! wait_for mariadb --no-defaults --socket="$d/mysqld.sock" -uroot -e 'SELECT 1'; then
    tail -20 "$d/error.log" >&2
    return 1
  fi
  mariadb --no-defaults --socket="$d/mysqld.sock" -uroot -e "
    CREATE USER 'casa'@'127.0.0.1' IDENTIFIED BY 'casa';
    GRANT ALL ON *.* TO 'casa'@'127.0.0.1';
    CREATE DATABASE casa_test;"
  EXPORTS+=("CASA_TEST_MYSQL_DSN=casa:casa@tcp(127.0.0.1:$port)/casa_test")
  log "MariaDB $(mariadbd --version | awk '{print $3}') on 127.0.0.1:$port"
}

start_s3() {
  local d="$DIR/weed" weed pm pv pf ps
  weed="${WEED:-}" # the weed binary; built (or found in the cache) when unset
  [[ -n "$weed" ]] || weed=$("$(dirname "$0")/build-weed.sh")
  pm=$(free_port); pv=$(free_port); pf=$(free_port); ps=$(free_port)
  mkdir -p "$d/data"
  # One identity: with it SeaweedFS checks the SigV4 signature of every
  # request (and the expiry of presigned URLs) and refuses anonymous ones.
  cat >"$d/s3.json" <<JSON
{
  "identities": [
    {
      "name": "casa",
      "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    }
  ]
}
JSON
  # -master.port's gRPC port is port+10000 (likewise volume, filer, s3):
  # free_port keeps ports below 50000 so they fit.
  "$weed" server -dir="$d/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="$pm" -volume.port="$pv" -volume.max=200 -master.volumeSizeLimitMB=64 \
    -filer -filer.port="$pf" -s3 -s3.port="$ps" -s3.config="$d/s3.json" >"$d/server.log" 2>&1 &
  echo $! >"$d/pid"
  # Signed requests (curl's SigV4; SeaweedFS wants the payload hash header).
  local sig=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY"
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
  # The S3 gateway answers before the filer and a volume are ready:
  # create the bucket until it works, then write an object.
  if ! wait_for curl -fsS "${sig[@]}" -X PUT "http://127.0.0.1:$ps/$S3_BUCKET"; then
    tail -30 "$d/server.log" >&2
    return 1
  fi
  if ! wait_for curl -fsS "${sig[@]}" -X PUT --data-binary probe "http://127.0.0.1:$ps/$S3_BUCKET/.probe"; then
    tail -30 "$d/server.log" >&2
    return 1
  fi
  # The server must refuse an unsigned request, or nothing tests signatures.
  if curl -fsS -o /dev/null "http://127.0.0.1:$ps/$S3_BUCKET/.probe" 2>/dev/null; then
    log "SeaweedFS S3 served an anonymous GET: -s3.config not in force"
    return 1
  fi
  curl -fsS "${sig[@]}" -X DELETE "http://127.0.0.1:$ps/$S3_BUCKET/.probe" >/dev/null || true
  EXPORTS+=("CASA_TEST_S3_ENDPOINT=http://127.0.0.1:$ps" "CASA_TEST_S3_BUCKET=$S3_BUCKET"
    "CASA_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY" "CASA_TEST_S3_SECRET_KEY=$S3_SECRET_KEY")
  log "SeaweedFS $("$weed" version 2>/dev/null | head -1) S3 on 127.0.0.1:$ps (master $pm, volume $pv, filer $pf; signatures checked)"
}

stop_all() {
  local dir=$1
  [[ -d "$dir" ]] || return 0
  if [[ -f "$dir/weed/pid" ]]; then
    kill "$(cat "$dir/weed/pid")" 2>/dev/null || true
  fi
  if [[ -f "$dir/mysql/mysqld.pid" ]]; then
    kill "$(cat "$dir/mysql/mysqld.pid")" 2>/dev/null || true
  fi
  if [[ -d "$dir/pg/data" ]]; then
    as_user postgres "$PG_BIN/pg_ctl" -D "$dir/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  # Give the servers a moment to exit before their directories go.
  local pid
  for pid in $(cat "$dir/weed/pid" "$dir/mysql/mysqld.pid" 2>/dev/null); do
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
  log "stopped and removed $dir"
}

case "${1:-start}" in
start)
  DIR=$(mktemp -d /tmp/casa-servers.XXXXXX)
  chmod 755 "$DIR"
  EXPORTS=("CASA_SERVERS_DIR=$DIR")
  # On failure, stop what was started.
  started=
  trap '[[ -n "$started" ]] || stop_all "$DIR"' EXIT
  for s in ${CASA_SERVERS:-postgres mysql s3}; do
    case $s in
    postgres) start_postgres ;;
    mysql) start_mysql ;;
    s3) start_s3 ;;
    *) log "unknown server $s"; exit 2 ;;
    esac
  done
  started=1
  for e in "${EXPORTS[@]}"; do printf 'export %q\n' "$e"; done
  ;;
stop)
  stop_all "${2:?usage: $0 stop DIR}"
  ;;
*)
  echo "usage: $0 start | stop DIR" >&2
  exit 2
  ;;
esac
