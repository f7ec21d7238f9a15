#!/usr/bin/env bash
# Build (or reuse) the test stack images and write .run/images.env.
#
# KORRIGO_STACK_IMAGES:
#   local     debootstrap a Debian base, build db/redis/app images from it
#   official  postgres:15 + redis:7 from the registry, app from debian:bookworm-slim
#   auto      (default) official when `docker pull` works, else local
#
# Images are tagged korrigo-stack/<name>:<hash of inputs>; unchanged inputs
# are never rebuilt.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mode=${KORRIGO_STACK_IMAGES:-auto}

# Hash of an image directory (names, modes, contents) plus the base tag.
inputs_hash() {
  local dir=$1 base=$2
  {
    (cd "$dir" && find . -type f -printf '%p %m\n' | LC_ALL=C sort &&
      find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    echo "base=$base"
  } | sha256sum | cut -c1-12
}

# build_image NAME BASE -> prints the tag
build_image() {
  local name=$1 base=$2 dir tag start
  dir=$STACK_DIR/images/$name
  tag="korrigo-stack/$name:$(inputs_hash "$dir" "$base")"
  if docker image inspect "$tag" >/dev/null 2>&1; then
    log "image $tag is up to date"
  else
    log "building $tag (FROM $base)"
    start=$SECONDS
    if ! docker build --network host --build-arg "BASE=$base" -t "$tag" "$dir" \
      >"$RUN_DIR/build-$name.log" 2>&1; then
      tail -n 40 "$RUN_DIR/build-$name.log" >&2
      die "docker build of $name failed (full log: $RUN_DIR/build-$name.log)"
    fi
    log "built $tag in $((SECONDS - start))s"
  fi
  echo "$tag"
}

registry_ok() {
  local img
  for img in postgres:15 redis:7 debian:bookworm-slim; do
    timeout 20 docker pull -q "$img" >/dev/null 2>&1 || return 1
  done
}

mkdir -p "$RUN_DIR"

if [ "$mode" = auto ]; then
  if registry_ok; then mode=official; else
    log "no image registry reachable: building images locally"
    mode=local
  fi
fi

case "$mode" in
  official)
    db_image=postgres:15
    redis_image=redis:7
    app_image=$(build_image app debian:bookworm-slim)
    ;;
  local)
    start=$SECONDS
    base=$("$STACK_DIR/images/base/build-base.sh")
    log "base image $base ready ($((SECONDS - start))s)"
    # The three builds are mostly downloads and dpkg: run them side by side.
    pids=()
    for name in postgres redis app; do
      build_image "$name" "$base" >"$RUN_DIR/tag-$name" &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do
      wait "$pid" || die "image build failed (see messages above)"
    done
    db_image=$(cat "$RUN_DIR/tag-postgres")
    redis_image=$(cat "$RUN_DIR/tag-redis")
    app_image=$(cat "$RUN_DIR/tag-app")
    rm -f "$RUN_DIR"/tag-*
    ;;
  *) die "KORRIGO_STACK_IMAGES must be local, official or auto (got '$mode')" ;;
esac

# Plain `docker-compose up` without images.env falls back to this tag.
docker tag "$app_image" korrigo-stack/app:latest

# Drop tags left by older inputs (~1 GB per set); images still used by a
# container are kept by docker itself.
keep=" $db_image $redis_image $app_image ${base:-} korrigo-stack/app:latest "
for old in $(docker images --format '{{.Repository}}:{{.Tag}}' | grep '^korrigo-stack/' || true); do
  case "$keep" in
    *" $old "*) ;;
    *) if docker rmi "$old" >/dev/null 2>&1; then log "removed stale image $old"; fi ;;
  esac
done

cat >"$RUN_DIR/images.env.tmp" <<ENV
KORRIGO_STACK_IMAGES_MODE=$mode
KORRIGO_DB_IMAGE=$db_image
KORRIGO_REDIS_IMAGE=$redis_image
KORRIGO_APP_IMAGE=$app_image
ENV
mv "$RUN_DIR/images.env.tmp" "$RUN_DIR/images.env"
log "images: db=$db_image redis=$redis_image app=$app_image"
