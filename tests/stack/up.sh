#!/usr/bin/env bash
# Build (if needed) and start the Korrigo test stack, then wait until every
# service answers. Safe to run again: unchanged images/containers are kept.
#
# Usage: up.sh [--schema head|8f16b75] [--no-wait] [--timeout SECONDS]
#   --schema   schema version the backend deploys (KORRIGO_SCHEMA_VERSION)
#   --no-wait  return right after `compose up -d`
#   --timeout  readiness wait limit (default 180, env KORRIGO_STACK_TIMEOUT)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

wait=1
timeout=${KORRIGO_STACK_TIMEOUT:-180}
while [ $# -gt 0 ]; do
  case "$1" in
    --schema) export KORRIGO_SCHEMA_VERSION=${2:?--schema needs a value}; shift 2 ;;
    --schema=*) export KORRIGO_SCHEMA_VERSION=${1#*=}; shift ;;
    --no-wait) wait=0; shift ;;
    --timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
    *) die "up.sh: unknown argument '$1'" ;;
  esac
done

"$STACK_DIR/build.sh"
load_images_env
mkdir -p "$RUN_DIR/media" "$RUN_DIR/logs"

# The backend refuses to migrate a database across schema versions, so a
# stack deployed with another --schema is reset first (db data is throw-away).
schema=${KORRIGO_SCHEMA_VERSION:-head}
backend=$(service_container -a backend)
if [ -n "$backend" ]; then
  current=$(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$backend" |
    sed -n 's/^KORRIGO_SCHEMA_VERSION=//p')
  if [ -n "$current" ] && [ "$current" != "$schema" ]; then
    log "schema $current -> $schema: resetting the stack"
    "$STACK_DIR/down.sh"
  fi
fi

log "starting project $STACK_PROJECT (schema $schema)"
# --no-build: build.sh already made the images; never fall back to a
# registry build from the compose file's build: section.
if ! compose up -d --no-build --remove-orphans; then
  compose ps >&2 || true
  compose logs --tail=50 >&2 || true
  die "compose up failed"
fi

if [ "$wait" = 1 ]; then
  "$STACK_DIR/wait.sh" --timeout "$timeout"
fi
