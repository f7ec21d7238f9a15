#!/usr/bin/env bash
# Stop the test stack and drop its data (db is on tmpfs, volumes removed,
# media emptied). Images are kept so the next up.sh starts fast; logs in
# .run/logs are kept for post-mortems.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

load_images_env
compose down -v --remove-orphans --timeout 10
if [ -d "$RUN_DIR/media" ]; then
  find "$RUN_DIR/media" -mindepth 1 -delete
fi
log "stack $STACK_PROJECT is down"
