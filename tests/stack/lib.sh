# shellcheck shell=bash
# Shared helpers for the Korrigo test stack scripts (source, don't execute).

STACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN_DIR=$STACK_DIR/.run
COMPOSE_FILE=$STACK_DIR/docker-compose.yml
STACK_PROJECT=korrigo
# shellcheck disable=SC2034 # used by the scripts that source this file
STACK_SERVICES=(db redis backend celery)

# The host's docker CLI may be newer than the daemon and lack buildx; the
# classic builder works everywhere we run (dockerd 20.10+).
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}

log() { printf '[stack %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Image tags written by build.sh; exported so compose interpolates them.
load_images_env() {
  if [ -f "$RUN_DIR/images.env" ]; then
    set -a
    # shellcheck disable=SC1091
    . "$RUN_DIR/images.env"
    set +a
  fi
}

# Prefer compose v2 ("docker compose"), fall back to v1 ("docker-compose").
# KORRIGO_COMPOSE_OVERRIDE: optional extra compose file (absolute path) layered
# on top, e.g. for a test that needs to change a service.
_compose_cmd=()
compose() {
  if [ ${#_compose_cmd[@]} -eq 0 ]; then
    if docker compose version >/dev/null 2>&1; then
      _compose_cmd=(docker compose)
    elif command -v docker-compose >/dev/null 2>&1; then
      _compose_cmd=(docker-compose)
    else
      die "neither 'docker compose' nor 'docker-compose' is available"
    fi
  fi
  local files=(-f "$COMPOSE_FILE")
  if [ -n "${KORRIGO_COMPOSE_OVERRIDE:-}" ]; then
    files+=(-f "$KORRIGO_COMPOSE_OVERRIDE")
  fi
  "${_compose_cmd[@]}" -p "$STACK_PROJECT" "${files[@]}" "$@"
}

# Container id of a compose service, found by labels: v1 and v2 name
# containers differently (korrigo_db_1 vs korrigo-db-1). Pass -a to include
# stopped containers.
service_container() {
  local all=()
  if [ "$1" = -a ]; then all=(-a); shift; fi
  docker ps "${all[@]}" -q \
    --filter "label=com.docker.compose.project=$STACK_PROJECT" \
    --filter "label=com.docker.compose.service=$1" | head -n 1
}
