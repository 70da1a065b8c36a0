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
# The base image plus the roles' packages (scripts/build-stack-image.sh).
WOPS_STACK_IMAGE=${WOPS_STACK_IMAGE:-localhost/warehouse-ops/debian12-stack:latest}
WOPS_MIN_FREE_MB=${WOPS_MIN_FREE_MB:-4096}
export WOPS_ROOT WOPS_CACHE WOPS_VENV WOPS_IMAGE WOPS_STACK_IMAGE

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
# netavark + aardvark-dns: podman's network backend with name resolution on
# user networks (with --no-install-recommends, podman brings the CNI plugins
# instead, whose user networks have no DNS). iptables: netavark's port
# forwarding, and clearing rules a previous CNI backend left behind.
# openssh-client: the testbed reaches SSH hosts like real ones.
WOPS_DEB_PACKAGES=(podman runc netavark aardvark-dns iptables debootstrap uidmap
  fuse-overlayfs slirp4netns openssh-client python3 python3-venv python3-dev gcc make
  git postgresql postgresql-contrib postgresql-client)
# What bin/test needs besides (the airflow scenario's browser test): Debian's
# chromium, which Playwright drives headless; certutil (libnss3-tools) for the
# throwaway NSS database that trusts the project CA; a font to lay pages out
# with (chromium only recommends one).
WOPS_TEST_DEB_PACKAGES=(chromium libnss3-tools fonts-liberation)

# wops_install_packages [PACKAGE...]: WOPS_DEB_PACKAGES and these.
wops_install_packages() {
  local missing=() p
  for p in "${WOPS_DEB_PACKAGES[@]}" "$@"; do
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
  wops_mitogen
}

# The testbed (molecule scenarios and the dev stack) runs Ansible with
# mitogen's strategy, as mitogen's documentation sets it up: strategy_plugins
# points at the installed package, strategy = mitogen_linear. It keeps one
# Python interpreter per host and runs modules in it instead of shipping each
# module over a fresh connection (molecule/README.md has the measured gain).
# WOPS_MITOGEN=0 runs with Ansible's own linear strategy.
wops_mitogen() {
  [ "${WOPS_MITOGEN:-1}" = 0 ] && return 0
  local dir
  dir=$("$WOPS_VENV/bin/python" -c 'import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))' 2>/dev/null) \
    || die "mitogen is not importable from $WOPS_VENV: rerun after deleting $WOPS_VENV/.wops-stamp (or set WOPS_MITOGEN=0)"
  export ANSIBLE_STRATEGY_PLUGINS="$dir/plugins/strategy"
  export ANSIBLE_STRATEGY=mitogen_linear
  # The podman that mitogen starts must not keep mitogen's CPU pin (see
  # testbed/mitogen-bin/podman); the wrapper execs the real one.
  if [ -z "${WOPS_PODMAN:-}" ]; then
    WOPS_PODMAN=$(command -v podman) || die "podman not found"
    export WOPS_PODMAN
    export PATH="$WOPS_ROOT/testbed/mitogen-bin:$PATH"
  fi
}

# Podman: the repository's containers.conf (runc, ulimits within the hard
# limits, the netavark network backend), or a derived copy when the machine's
# limits or runtimes differ. Nothing under /etc is changed.
wops_podman() {
  command -v podman >/dev/null || die "podman not found: apt-get install podman runc netavark aardvark-dns (or run bin/dev-up as root, which installs them)"
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
    printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n[engine]\nruntime = "%s"\n[network]\nnetwork_backend = "netavark"\n' \
      "$n" "$n" "$u" "$u" "$runtime" >"$conf"
  fi
  export CONTAINERS_CONF="$conf"
  podman info >/dev/null 2>&1 || die "podman does not work here (podman info failed with CONTAINERS_CONF=$conf): run 'podman info' to see why"
  wops_podman_dns
  wops_clear_stale_cni_rules
}

# Test hosts find each other by name on a user network: that needs podman's
# netavark backend with aardvark-dns. Detected, not assumed.
wops_podman_dns() {
  local backend
  backend=$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null || true)
  [ "$backend" = netavark ] || \
    die "podman uses the '${backend:-unknown}' network backend, whose user networks give no name resolution: apt-get install netavark aardvark-dns (the containers.conf in CONTAINERS_CONF selects netavark)"
  local dns
  for dns in /usr/lib/podman/aardvark-dns /usr/libexec/podman/aardvark-dns; do
    [ -x "$dns" ] && return 0
  done
  command -v aardvark-dns >/dev/null || \
    die "aardvark-dns is not installed: podman's user networks would give no name resolution; apt-get install aardvark-dns"
}

# A machine that ran podman with the CNI backend before keeps CNI's port
# forwarding chains in iptables' nat table; they catch the published ports of
# netavark's containers ("no route to host"). The CNI backend is not in use
# (wops_podman_dns insists on netavark), so its chains are stale: remove them.
wops_clear_stale_cni_rules() {
  command -v iptables >/dev/null || return 0
  local chains rule chain
  chains=$(iptables -t nat -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^CNI-/ {print $2}')
  [ -n "$chains" ] || return 0
  log "removing port-forwarding rules left by podman's CNI backend: $(echo "$chains" | tr '\n' ' ')"
  # Jumps into CNI chains from the built-in chains first, then the chains.
  iptables -t nat -S 2>/dev/null | awk '$1 == "-A" && $2 !~ /^CNI-/ && / -j CNI-/' | while read -r rule; do
    # The rule as iptables printed it, quotes included (comments have spaces).
    eval "iptables -t nat ${rule/-A /-D }" 2>/dev/null || true
  done
  for chain in $chains; do iptables -t nat -F "$chain" 2>/dev/null || true; done
  for chain in $chains; do iptables -t nat -X "$chain" 2>/dev/null || true; done
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
