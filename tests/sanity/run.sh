#!/usr/bin/env bash
# ansible-test sanity for korrigo.ops, offline apart from PyPI (`make sanity` runs this).
#
# ansible-test needs the collection at .../ansible_collections/korrigo/ops, so the git-tracked
# files plus untracked, non-ignored ones are copied to
# .cache/sanity/run.XXXXXX/ansible_collections/korrigo/ops (a fresh directory per run, so runs
# can overlap; removed at exit unless SANITY_KEEP=1; the repository is never linked into itself).
# Results are copied back to tests/output/ (ignored by git).
#
# Each sanity test runs in its own virtualenv that ansible-test creates under
# ~/.ansible/test/venv and fills from PyPI with pinned requirements. ansible-test bootstraps pip
# in those venvs with https://ci-files.testing.ansible.com/ansible-test/get-pip-<version>.py,
# cached as ~/.ansible/test/cache/get_pip_<version>.py. That host is unreachable here, so this
# script puts a stand-in at the cache path: it runs `pip install` from a zip of the pip the
# venv already has, which is what get-pip.py does with the pip it embeds.
#
# Usage: tests/sanity/run.sh [extra ansible-test sanity arguments, e.g. --test validate-modules]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PY=$VENV/bin/python
PYTHON_VERSION=${SANITY_PYTHON_VERSION:-3.11}
WORK=$ROOT/.cache/sanity

log() { printf '[sanity %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

[ -x "$PY" ] || { log "no venv at $VENV: run 'make venv' first"; exit 1; }
export PATH=$VENV/bin:$PATH

# 1. pip bootstrap stand-in for the version ansible-test pins (read from ansible-test itself).
pip_version=$(SANITY_PYTHON_VERSION=$PYTHON_VERSION "$PY" - <<'PY'
import os
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version=os.environ['SANITY_PYTHON_VERSION'], path=''))['pip'])
PY
)
cache_dir=$HOME/.ansible/test/cache
get_pip=$cache_dir/get_pip_${pip_version//./_}.py
pip_zip=$cache_dir/korrigo-ops-pip-bootstrap.zip
marker='korrigo.ops get-pip stand-in'
mkdir -p "$cache_dir"
if [ ! -s "$pip_zip" ]; then
  log "zipping the venv's pip into $pip_zip"
  site=$("$PY" -c 'import os, pip; print(os.path.dirname(os.path.dirname(pip.__file__)))')
  (cd "$site" && "$PY" -m zipfile -c "$pip_zip.$$" pip) && mv "$pip_zip.$$" "$pip_zip"
fi
if [ ! -f "$get_pip" ] || grep -q "$marker" "$get_pip"; then
  cat >"$get_pip.$$" <<PYEOF
# $marker (written by tests/sanity/run.sh).
# The real get-pip.py installs pip from a copy it embeds; this one uses the zip of pip next to it.
# Arguments are the ones ansible-test gives get-pip.py: pip options and requirements (pip==$pip_version).
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '$(basename "$pip_zip")'))
from pip._internal.cli.main import main  # noqa: E402

args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
sys.exit(main(['install', '--upgrade', '--force-reinstall'] + args))
PYEOF
  mv "$get_pip.$$" "$get_pip"
fi

# 2. A fresh copy of the collection, as git would ship it.
mkdir -p "$WORK"
RUN=$(mktemp -d "$WORK/run.XXXXXX")
DEST=$RUN/ansible_collections/korrigo/ops
if [ "${SANITY_KEEP:-0}" = 1 ]; then
  log "keeping $RUN"
else
  trap 'rm -rf "$RUN"' EXIT
fi
log "copying the collection to $DEST"
mkdir -p "$DEST"
collection_files() {
  if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do
        if [ -e "$ROOT/$f" ] || [ -L "$ROOT/$f" ]; then printf '%s\0' "$f"; fi  # skip deleted, uncommitted files
      done
  else
    # Not a git checkout (e.g. an unpacked tarball): everything but what .gitignore lists.
    log "no git work tree: copying all files but the ignored ones"
    (cd "$ROOT" && find . \( -name .git -o -name .venv -o -name .cache -o -name __pycache__ -o -name .pytest_cache \
        -o -path ./tests/output -o -path ./tests/stack/.run -o -path ./reports \) -prune \
        -o \( -type f -o -type l \) ! -name '*.pyc' ! -name 'korrigo-ops-*.tar.gz' -printf '%P\0')
  fi
}
collection_files | (cd "$ROOT" && tar --null -T - -cf -) | tar -xf - -C "$DEST"

# 3. Run. The copy lives inside this repository's git work tree (ignored), so ansible-test would
# find /work/.../.git by walking up and list no files; ANSIBLE_TEST_CONTENT_ROOT stops the walk and
# makes it list the copy's files as they are.
log "ansible-test sanity --python $PYTHON_VERSION $*"
start=$SECONDS
rc=0
(cd "$DEST" && ANSIBLE_TEST_CONTENT_ROOT=$DEST ansible-test sanity --python "$PYTHON_VERSION" --color no "$@") || rc=$?
log "ansible-test sanity finished in $((SECONDS - start))s with exit code $rc"

if [ -d "$DEST/tests/output" ]; then
  rm -rf "$ROOT/tests/output"
  mv -T "$DEST/tests/output" "$ROOT/tests/output" || log "could not keep the results in tests/output (another run?)"
fi
exit "$rc"
