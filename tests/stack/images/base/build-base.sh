#!/usr/bin/env bash
# Build a minimal Debian bookworm base image from the Debian mirror with
# debootstrap, so the test stack builds without any container registry.
#
#   build-base.sh              build (or reuse) the image, print its tag
#   build-base.sh --print-tag  only print the tag this script would produce
#
# Env: KORRIGO_DEBIAN_MIRROR           (default http://deb.debian.org/debian)
#      KORRIGO_DEBIAN_SECURITY_MIRROR  (default http://deb.debian.org/debian-security)
#      KORRIGO_HOST_CA_BUNDLE          (default /etc/ssl/certs/ca-certificates.crt)
#      KORRIGO_DEBOOTSTRAP_CACHE       (default /var/cache/korrigo-stack/debootstrap)
set -euo pipefail

self=$(readlink -f "${BASH_SOURCE[0]}")
# The tag follows the script content: editing this file yields a new base.
tag="korrigo-stack/debian:bookworm-$(sha256sum "$self" | cut -c1-12)"

if [ "${1:-}" = --print-tag ]; then
  echo "$tag"
  exit 0
fi

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

mirror=${KORRIGO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${KORRIGO_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
host_ca=${KORRIGO_HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
cache=${KORRIGO_DEBOOTSTRAP_CACHE:-/var/cache/korrigo-stack/debootstrap}

[ "$(id -u)" = 0 ] || { echo "build-base.sh: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "build-base.sh: debootstrap is not installed" >&2; exit 1; }

work=$(mktemp -d /var/tmp/korrigo-base.XXXXXX)
root=$work/rootfs
cleanup() {
  # debootstrap may leave proc/sys mounted when it fails half-way.
  umount -R "$root/proc" "$root/sys" 2>/dev/null || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

mkdir -p "$cache"
echo "build-base.sh: debootstrap bookworm from $mirror" >&2
debootstrap --variant=minbase --include=ca-certificates --components=main \
  --cache-dir="$cache" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 40 "$work/debootstrap.log" >&2
  exit 1
}

# Never start services from package postinst scripts inside image builds.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

# Small, fast image builds: no recommends, no translations, no docs.
cat >"$root/etc/apt/apt.conf.d/90korrigo" <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
CONF
cat >"$root/etc/dpkg/dpkg.cfg.d/90korrigo-nodoc" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CONF

rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC

# Trust the host's extra CAs (e.g. a TLS-intercepting proxy) inside builds:
# copy each host certificate missing from Debian's bundle as its own file so
# update-ca-certificates keeps it and creates the OpenSSL hash link.
if [ -r "$host_ca" ]; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  tr -d '\r' <"$host_ca" | awk -v out="$root/usr/local/share/ca-certificates/korrigo-host" '
    FNR == 1 { file++ }
    /-----BEGIN CERTIFICATE-----/ { cert = ""; inside = 1 }
    inside { cert = cert $0 "\n" }
    /-----END CERTIFICATE-----/ {
      inside = 0
      if (file == 1) known[cert] = 1
      else if (!(cert in known)) { n++; f = out "-" n ".crt"; printf "%s", cert > f; close(f) }
    }' "$root/etc/ssl/certs/ca-certificates.crt" -
  chroot "$root" update-ca-certificates >/dev/null 2>&1
fi

# Same slimming for what debootstrap already installed; drop the host's
# resolv.conf/hostname copied by debootstrap (docker provides its own).
find "$root/usr/share/doc" -type f ! -name copyright -delete
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/*
rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
  "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log \
  "$root"/tmp/* "$root"/var/tmp/*

echo "build-base.sh: importing $tag" >&2
tar --numeric-owner --xattrs -C "$root" \
  --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
  docker import \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$tag" >/dev/null
echo "$tag"
