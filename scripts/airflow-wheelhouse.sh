#!/usr/bin/env bash
# Build the offline wheelhouse for the Airflow role on the controller, once per
# constraints file, and print its directory:
#
#   scripts/airflow-wheelhouse.sh [AIRFLOW_VERSION]     # default 3.3.2
#
# $WOPS_CACHE/airflow-wheelhouse/<version>-py3.11 then holds exactly the
# wheels roles/airflow/files/constraints/airflow-<version>-python3.11.txt pins
# (Airflow, its providers, the ETL package's dependencies). Molecule
# scenarios mount that tree read-only into the hosts, and the role installs
# from it with airflow_pip_wheelhouse (pip --no-index --find-links): the same
# path air-gapped hosts use. A stamp with the constraints file's sha256 makes a
# second run a no-op; a changed constraints file rebuilds the directory.
# pip uses the controller's own index settings and trust store.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=${1:-3.3.2}
python_tag=3.11
constraints="$root/roles/airflow/files/constraints/airflow-${version}-python${python_tag}.txt"
cache=${WOPS_CACHE:-/var/cache/warehouse-ops}
dest="$cache/airflow-wheelhouse/${version}-py${python_tag}"
py=${WOPS_PYTHON:-python3}

[ -f "$constraints" ] || { echo "error: no constraints file $constraints" >&2; exit 2; }
"$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "error: $py is not Python 3.11 (the hosts' Python); set WOPS_PYTHON" >&2; exit 2; }

sum=$(sha256sum "$constraints" | cut -d' ' -f1)
if [ -f "$dest/.constraints.sha256" ] && [ "$(cat "$dest/.constraints.sha256")" = "$sum" ]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache/airflow-wheelhouse"
tmp=$(mktemp -d "$cache/airflow-wheelhouse/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Every pinned distribution, as a binary wheel, without resolving again: the
# constraints file is the complete, checked set.
grep -vE '^\s*(#|$)' "$constraints" > "$tmp/requirements.txt"
start=$SECONDS
if ! "$py" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp/wheels" \
    -r "$tmp/requirements.txt" >"$tmp/pip.log" 2>&1; then
  cat "$tmp/pip.log" >&2
  echo "error: pip download failed (pip's index settings and trust store apply)" >&2
  exit 1
fi
echo "$sum" > "$tmp/wheels/.constraints.sha256"
rm -rf "$dest"
mv "$tmp/wheels" "$dest"
chmod -R a+rX "$dest"
echo "built $dest ($(find "$dest" -name '*.whl' | wc -l) wheels, $((SECONDS - start)) s)" >&2
echo "$dest"
