#!/usr/bin/env bash
# Make a machine ready for the test stack: the system packages it needs and a
# running Docker daemon. Called by `make demo` / `make test` (the `stack`
# target) and by .ci/run; safe and quick to run again.
#
# Usage: bootstrap.sh [packages] [docker] [test-packages]
#                                  (default: packages docker, in that order)
#   packages  docker.io, docker-compose, debootstrap, make, curl,
#             postgresql-client, python3-venv: installed with apt-get when run
#             as root (one `apt-get update` first), otherwise the one command
#             to run is printed and the script fails
#   docker    starts dockerd when none answers (root only): host networking,
#             no bridge, no iptables (the stack only uses loopback); waits up
#             to 60 s; log in KORRIGO_DOCKERD_LOG (/var/log/korrigo-dockerd.log)
#
# Debian 12 and Ubuntu 22.04/24.04 use the same package names (on Ubuntu they
# are in "universe"; where docker-compose v1 is missing, docker-compose-v2 also
# does: `docker compose` is accepted as well).
set -euo pipefail

say() { printf '[bootstrap] %s\n' "$*"; }
fail() { printf '[bootstrap] ERROR: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

packages() {
  local missing=() present=()
  # Debian package -> how to tell it is there (the docker CLI alone is not
  # enough: the stack needs dockerd).
  have() { if "${@:2}" >/dev/null 2>&1; then present+=("$1"); else missing+=("$1"); fi; }
  have docker.io command -v dockerd
  have docker-compose eval 'command -v docker-compose || docker compose version'
  have debootstrap eval 'command -v debootstrap || test -x /usr/sbin/debootstrap'
  have make command -v make
  have curl command -v curl
  have postgresql-client command -v psql
  # Debian's python3 has no ensurepip (so no `python3 -m venv`) without it.
  have python3-venv "${PYTHON:-python3}" -c 'import ensurepip, venv'

  if [ ${#missing[@]} -eq 0 ]; then
    say "packages: all present (${present[*]})"
    return 0
  fi
  if ! is_root; then
    say "packages missing: ${missing[*]}"
    say "run once as root:  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    fail "missing system packages (root is needed to install them)"
  fi
  command -v apt-get >/dev/null 2>&1 || fail "no apt-get: install ${missing[*]} with this system's package manager"
  say "packages: installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  apt-get update -q
  apt-get install -y -q "${missing[@]}" </dev/null
  say "packages: installed ${missing[*]}"
}

# What the test suite needs besides the stack (tests/stack/apt-packages.txt: chromium for the HTML report,
# Prometheus, Alertmanager and Java for the alerting end-to-end test).
test_packages() {
  local list missing=()
  list="$(dirname "$0")/apt-packages.txt"
  [ -f "$list" ] || { say "test-packages: no $list"; return 0; }
  local pkg
  while read -r pkg; do
    [ -n "$pkg" ] || continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list")
  if [ ${#missing[@]} -eq 0 ]; then
    say "test-packages: all present"
    return 0
  fi
  if ! is_root; then
    say "run once as root:  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    fail "missing test packages (root is needed to install them)"
  fi
  say "test-packages: installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
  say "test-packages: installed ${missing[*]}"
}

docker_daemon() {
  command -v docker >/dev/null 2>&1 || fail "no docker CLI (run: $0 packages)"
  if docker info >/dev/null 2>&1; then
    say "dockerd: already running ($(docker version --format 'daemon {{.Server.Version}}' 2>/dev/null))"
  elif ! is_root; then
    if [ -S /var/run/docker.sock ]; then
      say "a Docker daemon runs but this user may not use it"
      say "run:  sudo usermod -aG docker $USER   (then log in again), or run as root"
    else
      say "no Docker daemon is running; run:  sudo $0 docker"
    fi
    fail "no usable Docker daemon"
  else
    local log=${KORRIGO_DOCKERD_LOG:-/var/log/korrigo-dockerd.log}
    # Leftover pid file from a daemon that died with a previous session.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
      rm -f /var/run/docker.pid
    fi
    if ! mountpoint -q /sys/fs/cgroup && command -v cgroupfs-mount >/dev/null 2>&1; then
      cgroupfs-mount
    fi
    say "dockerd: not running, starting it (--bridge=none --iptables=false --ip6tables=false, log: $log)"
    nohup setsid dockerd --bridge=none --iptables=false --ip6tables=false \
      </dev/null >"$log" 2>&1 &
    local waited=0
    until docker info >/dev/null 2>&1; do
      if [ "$waited" -ge 60 ]; then
        tail -n 50 "$log" >&2
        fail "dockerd did not become ready within 60 s (log: $log)"
      fi
      sleep 1
      waited=$((waited + 1))
    done
    say "dockerd: started in ${waited}s ($(docker version --format 'daemon {{.Server.Version}}'))"
  fi
  if docker compose version >/dev/null 2>&1; then
    say "compose: $(docker compose version --short 2>/dev/null || echo v2)"
  else
    say "compose: docker-compose $(docker-compose version --short 2>/dev/null)"
  fi
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(packages docker)
for step in "${steps[@]}"; do
  case "$step" in
    packages) packages ;;
    docker) docker_daemon ;;
    test-packages) test_packages ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
    *) fail "unknown step '$step' (packages, docker, test-packages)" ;;
  esac
done
