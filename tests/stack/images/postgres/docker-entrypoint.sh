#!/usr/bin/env bash
# Subset of the official postgres image entrypoint, enough for the Korrigo test
# stack to run unchanged on either image:
#   POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB / POSTGRES_INITDB_ARGS /
#   POSTGRES_HOST_AUTH_METHOD, PGDATA, /docker-entrypoint-initdb.d/*.{sh,sql,sql.gz}
set -Eeo pipefail

# "docker run IMAGE -c x=y" means "postgres -c x=y", like upstream.
if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi

export PGDATA=${PGDATA:-/var/lib/postgresql/data}

# "postgres --version", "-C setting", ... only print: no setup, no initdb.
want_help() {
  local arg
  for arg; do
    case "$arg" in
      -'?' | --help | --describe-config | -V | --version | -C) return 0 ;;
    esac
  done
  return 1
}
if [ "$1" = postgres ] && want_help "$@"; then
  exec "$@"
fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  # A tmpfs or fresh volume arrives root-owned; postgres insists on 0700.
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  chmod 3777 /var/run/postgresql
  export HOME=/var/lib/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

process_sql() {
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc \
    --dbname "$POSTGRES_DB" "$@"
}

init_database() {
  : "${POSTGRES_USER:=postgres}"
  : "${POSTGRES_DB:=$POSTGRES_USER}"
  : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
  # Stricter than upstream when unset: initdb would otherwise trust every
  # TCP client from 127.0.0.1, i.e. the whole host under network_mode: host.
  : "${POSTGRES_INITDB_ARGS=--auth-local=trust --auth-host=$POSTGRES_HOST_AUTH_METHOD}"
  export POSTGRES_USER POSTGRES_DB

  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
    echo "error: database is uninitialized and POSTGRES_PASSWORD is not set" >&2
    echo "       (set it, or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
    exit 1
  fi

  # POSTGRES_INITDB_ARGS is word-split on purpose, as upstream does.
  # shellcheck disable=SC2086
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
    ${POSTGRES_INITDB_ARGS:-}

  # Catch-all rule for remote clients, as upstream appends it.
  printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

  # Temporary server on the unix socket only, with the user's settings.
  shift # "postgres"
  local opts
  opts=$(printf '%q ' "$@" -c listen_addresses= -p "${PGPORT:-5432}")
  PGUSER=$POSTGRES_USER pg_ctl -D "$PGDATA" -o "$opts" -w start

  export PGPASSWORD=${POSTGRES_PASSWORD:-}
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc \
      --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi

  local f
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then
          echo "$0: running $f"; "$f"
        else
          echo "$0: sourcing $f"
          # shellcheck disable=SC1090
          . "$f"
        fi ;;
      *.sql) echo "$0: running $f"; process_sql -f "$f" ;;
      *.sql.gz) echo "$0: running $f"; gunzip -c "$f" | process_sql ;;
      *.sql.xz) echo "$0: running $f"; xzcat "$f" | process_sql ;;
      *) if [ -e "$f" ]; then echo "$0: ignoring $f"; fi ;;
    esac
  done
  unset PGPASSWORD

  PGUSER=$POSTGRES_USER pg_ctl -D "$PGDATA" -m fast -w stop
  echo "PostgreSQL init process complete; ready for start up."
}

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  init_database "$@"
fi

exec "$@"
