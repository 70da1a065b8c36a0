#!/usr/bin/env bash
# Build the systemd base image for the test hosts with debootstrap and import it
# into podman. Rebuilt only when this recipe changes: the image carries the
# recipe's hash as a label and the build is skipped when it matches.
#
# Usage: scripts/build-image.sh [--force]
source "$(dirname "$0")/lib.sh"

wops_require_root
wops_podman

# Everything that shapes the image feeds the hash.
recipe_hash=$(cat "$0" | sha256sum | cut -c1-16)
label=org.warehouse-ops.recipe

have=$(podman image inspect --format "{{ index .Labels \"$label\" }}" "$WOPS_IMAGE" 2>/dev/null || true)
if [ "${1:-}" != "--force" ] && [ "$have" = "$recipe_hash" ]; then
  log "base image $WOPS_IMAGE is current ($recipe_hash)"
  exit 0
fi

command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap and run again"
mirror=$(wops_debian_mirror)
security=$(wops_debian_security_mirror)

mkdir -p "$WOPS_CACHE"
exec 9>"$WOPS_CACHE/build-image.lock"
flock 9
# Another build may have finished while this one waited for the lock.
have=$(podman image inspect --format "{{ index .Labels \"$label\" }}" "$WOPS_IMAGE" 2>/dev/null || true)
if [ "${1:-}" != "--force" ] && [ "$have" = "$recipe_hash" ]; then exit 0; fi

root=$(mktemp -d "$WOPS_CACHE/rootfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
log "debootstrap bookworm into $root (mirror from the machine's apt configuration)"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,ca-certificates,procps \
  bookworm "$root" "$mirror" >"$WOPS_CACHE/debootstrap.log" 2>&1 \
  || die "debootstrap failed: see $WOPS_CACHE/debootstrap.log"

# apt sources: the same mirror, plus updates and security when the machine has them.
rm -f "$root/etc/apt/sources.list"
{
  printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$mirror"
  printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
  if [ -n "$security" ]; then
    printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n' "$security"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
  fi
} >"$root/etc/apt/sources.list.d/debian.sources"

# A container boots like a fresh host: no machine id, no stale apt lists,
# and no units that only make sense on hardware.
: >"$root/etc/machine-id"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
# An empty package list must look stale, or apt's cache_valid_time skips the update.
touch -d @0 "$root/var/lib/apt/lists"
for unit in systemd-remount-fs.service getty.target console-getty.service \
            systemd-firstboot.service systemd-udevd.service sys-kernel-config.mount; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# Keep downloaded packages in a cache the controller mounts at
# /var/cache/wops-apt: one subdirectory per host name, because apt does not
# wait for another host's lock on a shared archives directory. Kept across
# runs, so a host created again downloads nothing it had before.
rm -f "$root/etc/apt/apt.conf.d/docker-clean"
echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' >"$root/etc/apt/apt.conf.d/10keep-packages"
cat >"$root/etc/systemd/system/wops-apt-cache.service" <<'UNIT'
[Unit]
Description=Use the controller's package cache for this host
ConditionPathIsMountPoint=/var/cache/wops-apt
Before=multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'd=/var/cache/wops-apt/$(hostname); mkdir -p "$d/partial" && printf "Dir::Cache::Archives \"%%s/\";\n" "$d" >/etc/apt/apt.conf.d/05wops-cache'
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/wops-apt-cache.service "$root/etc/systemd/system/multi-user.target.wants/wops-apt-cache.service"

log "importing $WOPS_IMAGE"
tar -C "$root" -c . | podman import \
  --change 'CMD ["/sbin/init"]' \
  --change "LABEL $label=$recipe_hash" \
  --change 'ENV container=podman' \
  - "$WOPS_IMAGE" >/dev/null || die "podman import failed"
log "base image $WOPS_IMAGE built ($recipe_hash)"
