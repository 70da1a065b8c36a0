#!/usr/bin/env bash
# Remove the dev stack's containers and network (their data goes with them).
source "$(dirname "$0")/lib.sh"
wops_require_root
wops_podman
mapfile -t ids < <(podman ps -a --filter label=warehouse-ops.testbed=dev --format '{{.Names}}')
if [ ${#ids[@]} -gt 0 ]; then
  podman rm -f "${ids[@]}" >/dev/null
  log "removed ${ids[*]}"
fi
podman network exists wops-dev && podman network rm wops-dev >/dev/null && log "removed network wops-dev"
exit 0
