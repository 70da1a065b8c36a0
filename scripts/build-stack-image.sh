#!/usr/bin/env bash
# Build the stack image for the test hosts: the base image (build-image.sh)
# plus the Debian packages of the roles named below, already unpacked, so a
# scenario that does not test installation skips apt's slowest work. The
# package list is read from the roles' own apt tasks (testbed/stack_packages.py).
# Rebuilt only when the base image, this recipe or the list changes.
#
# Usage: scripts/build-stack-image.sh [--force]
source "$(dirname "$0")/lib.sh"

wops_require_root
wops_podman

# pgBouncer, pgBackRest, Redis and Airflow are left out: their hosts keep
# installing them in the scenarios, and no host runs a service it was not
# given. The airflow and dr scenarios install everything from the base image.
roles=(common pki postgresql warehouse_etl)
packages=$("$WOPS_VENV/bin/python" "$WOPS_ROOT/testbed/stack_packages.py" "${roles[@]}") \
  || die "testbed/stack_packages.py could not read the roles' package lists"
# openssh-server makes its host keys when it installs: every host keeps its own.
packages=$(tr ' ' '\n' <<<"$packages" | grep -vx openssh-server | paste -sd ' ')
# The common role's locale, generated once here instead of in every scenario
# (the airflow and common scenarios, on the base image, still generate it).
locale=$("$WOPS_VENV/bin/python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["common_locale"])' \
  "$WOPS_ROOT/roles/common/defaults/main.yml") || die "no common_locale in roles/common/defaults/main.yml"
label=org.warehouse-ops.recipe
base=$(podman image inspect --format "{{ index .Labels \"$label\" }}" "$WOPS_IMAGE" 2>/dev/null) \
  || die "no base image $WOPS_IMAGE: run scripts/build-image.sh first"
recipe_hash=$( (cat "$0"; echo "$base"; echo "$packages"; echo "$locale") | sha256sum | cut -c1-16)

have=$(podman image inspect --format "{{ index .Labels \"$label\" }}" "$WOPS_STACK_IMAGE" 2>/dev/null || true)
if [ "${1:-}" != "--force" ] && [ "$have" = "$recipe_hash" ]; then
  log "stack image $WOPS_STACK_IMAGE is current ($recipe_hash)"
  exit 0
fi

mkdir -p "$WOPS_CACHE/apt-archives/stack-image/partial"
exec 9>"$WOPS_CACHE/build-stack-image.lock"
flock 9
have=$(podman image inspect --format "{{ index .Labels \"$label\" }}" "$WOPS_STACK_IMAGE" 2>/dev/null || true)
if [ "${1:-}" != "--force" ] && [ "$have" = "$recipe_hash" ]; then exit 0; fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
# No service starts while packages install (nothing runs during a build);
# the cluster postgresql-common would create is not made: the postgresql role
# creates its own (with data checksums). The package lists go again, and
# look stale, as in the base image.
cat >"$ctx/Containerfile" <<CONTAINERFILE
FROM $WOPS_IMAGE
RUN set -eu; \\
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 0755 /usr/sbin/policy-rc.d; \\
    mkdir -p /etc/postgresql-common/createcluster.d; \\
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/00-wops-image.conf; \\
    apt-get update -q; \\
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $packages; \\
    sed -i 's/^# *\\($locale \\)/\\1/' /etc/locale.gen; locale-gen; locale -a | grep -qix '${locale%%.*}.utf8'; \\
    rm -f /usr/sbin/policy-rc.d /etc/postgresql-common/createcluster.d/00-wops-image.conf; \\
    rmdir --ignore-fail-on-non-empty /etc/postgresql-common/createcluster.d; \\
    if command -v pg_lsclusters >/dev/null && [ -n "\$(pg_lsclusters -h)" ]; then echo "a cluster was created" >&2; exit 1; fi; \\
    rm -rf /var/lib/apt/lists/*; touch -d @0 /var/lib/apt/lists
LABEL $label=$recipe_hash
CONTAINERFILE
log "building $WOPS_STACK_IMAGE: $packages"
podman build -q --network host \
  -v "$WOPS_CACHE/apt-archives/stack-image:/var/cache/apt/archives" \
  -t "$WOPS_STACK_IMAGE" -f "$ctx/Containerfile" "$ctx" >"$WOPS_CACHE/build-stack-image.log" 2>&1 \
  || die "building the stack image failed: see $WOPS_CACHE/build-stack-image.log"
log "stack image $WOPS_STACK_IMAGE built ($recipe_hash)"
