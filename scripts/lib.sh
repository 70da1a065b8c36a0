#!/usr/bin/env bash
# Shared helpers for the warehouse-ops entry points (bin/dev-up, bin/test).
# Sourced, never executed. Every check fails with one line that says what is
# missing and how to fix it.
set -euo pipefail

WOPS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Caches live outside the clone, so every checkout (and CI's clean clones)
# reuses the downloaded packages and wheels.
WOPS_CACHE=${WOPS_CACHE:-/var/cache/warehouse-ops}
WOPS_VENV=${WOPS_VENV:-$WOPS_ROOT/.venv}
WOPS_IMAGE=${WOPS_IMAGE:-localhost/warehouse-ops/debian12-systemd:latest}
WOPS_MIN_FREE_MB=${WOPS_MIN_FREE_MB:-4096}
export WOPS_ROOT WOPS_CACHE WOPS_VENV WOPS_IMAGE

die() { echo "error: $*" >&2; exit 1; }
log() { printf '==> %s\n' "$*" >&2; }

wops_require_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (systemd test hosts need rootful podman): run it with sudo or as root"
}

wops_require_disk() {
  local free_mb
  mkdir -p "$WOPS_CACHE"
  free_mb=$(df -Pm "$WOPS_CACHE" | awk 'NR==2 {print $4}')
  [ "$free_mb" -ge "$WOPS_MIN_FREE_MB" ] || \
    die "only ${free_mb} MB free under $WOPS_CACHE; free at least ${WOPS_MIN_FREE_MB} MB (or set WOPS_MIN_FREE_MB) and run again"
  free_mb=$(df -Pm /var/lib 2>/dev/null | awk 'NR==2 {print $4}')
  [ "${free_mb:-0}" -ge "$WOPS_MIN_FREE_MB" ] || \
    die "only ${free_mb:-0} MB free under /var/lib (podman storage); free at least ${WOPS_MIN_FREE_MB} MB and run again"
}

# Debian packages the controller needs. Installed once; apt is skipped when all
# are present, so a second run is quick and offline-safe.
WOPS_DEB_PACKAGES=(podman runc debootstrap uidmap fuse-overlayfs slirp4netns
  python3 python3-venv python3-dev gcc make git postgresql postgresql-contrib
  postgresql-client)

wops_install_packages() {
  local missing=() p
  for p in "${WOPS_DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} with your package manager and run again"
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq || die "apt-get update failed: check the machine's apt sources and network"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed: see the apt output above"
  # Debian starts a default cluster and pgbouncer on install; the project runs
  # its own throwaway servers and must not depend on (or collide with) these.
  systemctl disable --now postgresql >/dev/null 2>&1 || true
}

# Pick the python interpreter: the first python3 on PATH that has venv+ensurepip.
wops_python() {
  local py
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import venv, ensurepip' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  die "no python3 with the venv module: apt-get install python3-venv and run again"
}

# The virtualenv holds the pinned toolchain (requirements.txt) and the project
# itself (editable). Rebuilt only when requirements.txt or pyproject.toml change.
wops_venv() {
  local stamp="$WOPS_VENV/.wops-stamp" want
  want=$(cat "$WOPS_ROOT/requirements.txt" "$WOPS_ROOT/pyproject.toml" | sha256sum | cut -c1-16)
  if [ ! -x "$WOPS_VENV/bin/python" ]; then
    log "creating virtualenv $WOPS_VENV"
    "$(wops_python)" -m venv "$WOPS_VENV" || die "python3 -m venv $WOPS_VENV failed"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing the pinned toolchain into $WOPS_VENV"
    "$WOPS_VENV/bin/pip" install -q --disable-pip-version-check -r "$WOPS_ROOT/requirements.txt" \
      || die "pip install -r requirements.txt failed: check pip's index settings (PIP_INDEX_URL, PIP_CERT) and run again"
    "$WOPS_VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e "$WOPS_ROOT" \
      || die "pip install -e . failed"
    echo "$want" >"$stamp"
  fi
  export PATH="$WOPS_VENV/bin:$PATH"
  export ANSIBLE_CONFIG="$WOPS_ROOT/ansible.cfg"
}

# Podman: use the machine's settings when they work, else the repository's
# containers.conf (runc, ulimits within the hard limits). Nothing under /etc
# is changed.
wops_podman() {
  command -v podman >/dev/null || die "podman not found: apt-get install podman runc (or run bin/dev-up as root, which installs it)"
  local conf="$WOPS_ROOT/testbed/containers.conf" hn hu
  hn=$(ulimit -Hn); hu=$(ulimit -Hu)
  if [ "$hn" != unlimited ] && [ "$hn" -lt 10000 ] || { [ "$hu" != unlimited ] && [ "$hu" -lt 4096 ]; } \
     || ! command -v runc >/dev/null; then
    mkdir -p "$WOPS_CACHE"
    conf="$WOPS_CACHE/containers.conf"
    local n=10000 u=4096 runtime=runc
    [ "$hn" != unlimited ] && [ "$hn" -lt $n ] && n=$hn
    [ "$hu" != unlimited ] && [ "$hu" -lt $u ] && u=$hu
    command -v runc >/dev/null || runtime=crun
    printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n[engine]\nruntime = "%s"\n' \
      "$n" "$n" "$u" "$u" "$runtime" >"$conf"
  fi
  export CONTAINERS_CONF="$conf"
  podman info >/dev/null 2>&1 || die "podman does not work here (podman info failed with CONTAINERS_CONF=$conf): run 'podman info' to see why"
}

# The apt mirror the machine itself uses, read from its apt configuration at
# run time so that no mirror is written into the project. WOPS_DEBIAN_MIRROR
# overrides it (needed on hosts that are not Debian).
wops_debian_mirror() {
  if [ -n "${WOPS_DEBIAN_MIRROR:-}" ]; then echo "$WOPS_DEBIAN_MIRROR"; return; fi
  local m
  m=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
  [ -n "$m" ] || m=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
  [ -n "$m" ] || die "no Debian mirror found in /etc/apt: set WOPS_DEBIAN_MIRROR to a Debian mirror URL and run again"
  echo "$m"
}

wops_debian_security_mirror() {
  local m
  m=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -- '-security' | head -n1 || true)
  [ -n "$m" ] || m=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -- '-security' | head -n1 || true)
  echo "$m"
}

# The CA bundle the test hosts must trust (TLS proxies re-sign package traffic).
wops_ca_bundle() {
  if [ -n "${WOPS_CA_BUNDLE:-}" ]; then echo "$WOPS_CA_BUNDLE"; return; fi
  [ -f /etc/ssl/certs/ca-certificates.crt ] && echo /etc/ssl/certs/ca-certificates.crt
}
