#!/usr/bin/env bash
# Wait until the running test stack really answers:
#   db       login as korrigo over TCP 127.0.0.1:55432
#   redis    PING on 127.0.0.1:56379
#   backend  GET http://127.0.0.1:58088/api/health/ -> 200
#   celery   `celery inspect ping` answered by a worker
#
# Usage: wait.sh [--timeout SECONDS] [SERVICE...]   (default: all four, 180 s)
# Fails early when a service container has exited and will not be restarted.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

timeout=${KORRIGO_STACK_TIMEOUT:-180}
services=()
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
    db | redis | backend | celery) services+=("$1"); shift ;;
    *) die "wait.sh: unknown argument '$1'" ;;
  esac
done
[ ${#services[@]} -gt 0 ] || services=("${STACK_SERVICES[@]}")
load_images_env

# Checks run inside the service containers (through docker exec) so the host
# needs neither psql nor redis-cli; the network is the host's anyway.
check_db() {
  local id
  id=$(service_container db)
  [ -n "$id" ] && docker exec "$id" psql -Atqc 'select 1' \
    postgresql://korrigo:stack-secret@127.0.0.1:55432/korrigo >/dev/null 2>&1
}
check_redis() {
  local id
  id=$(service_container redis)
  [ -n "$id" ] &&
    [ "$(docker exec "$id" redis-cli -h 127.0.0.1 -p 56379 ping 2>/dev/null)" = PONG ]
}
check_backend() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    http://127.0.0.1:58088/api/health/ 2>/dev/null)" = 200 ]
}
check_celery() {
  local id
  id=$(service_container celery)
  # Name the worker (default node name celery@<hostname>; host network, so
  # the container's hostname is the host's): the ping then returns on the
  # first reply instead of always waiting out its whole timeout.
  [ -n "$id" ] && docker exec "$id" sh -c \
    'exec celery -A korrigo_stack.worker inspect ping --timeout 2 -d "celery@$(cat /proc/sys/kernel/hostname)"' \
    >/dev/null 2>&1
}

# True when the service's container stopped for good (no restart policy).
service_dead() {
  local id state
  id=$(service_container -a "$1")
  [ -n "$id" ] || return 1
  state=$(docker inspect -f '{{.State.Status}} {{.HostConfig.RestartPolicy.Name}}' "$id" 2>/dev/null) || return 1
  case "$state" in
    "exited no" | "exited " | "dead "*) return 0 ;;
    *) return 1 ;;
  esac
}

start=$SECONDS
deadline=$((SECONDS + timeout))
pending=("${services[@]}")
log "waiting up to ${timeout}s for: ${pending[*]}"
while :; do
  still=()
  for svc in "${pending[@]}"; do
    if "check_$svc"; then
      log "$svc is ready ($((SECONDS - start))s)"
    elif service_dead "$svc"; then
      log "$svc container has exited; its last logs:"
      compose logs --tail=50 "$svc" >&2 || true
      die "$svc exited before becoming ready"
    else
      still+=("$svc")
    fi
  done
  [ ${#still[@]} -gt 0 ] || break
  pending=("${still[@]}")
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "not ready after ${timeout}s: ${pending[*]}; last logs:"
    compose ps >&2 || true
    compose logs --tail=50 >&2 || true
    die "timed out waiting for: ${pending[*]}"
  fi
  sleep 2
done
log "stack ready in $((SECONDS - start))s"
