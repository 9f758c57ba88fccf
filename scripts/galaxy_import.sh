#!/usr/bin/env bash
# Builds the collection tarball and runs galaxy-importer on it, as Galaxy does on an upload,
# offline and without containers (.venv/importer/, from requirements-importer.txt).
# Configured by tests/galaxy-importer.cfg (GALAXY_IMPORTER_CONFIG). Fails when the import
# fails or logs a warning other than the one every collection with a sanity ignore file gets.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/ansible-galaxy collection build --output-path "$tmp" . >/dev/null
tarball=$(echo "$tmp"/dgxspark-cluster-*.tar.gz)
# ansible-doc, which renders the plugin docs, comes from the importer's virtualenv. The importer
# writes importer_result.json into its working directory: the temporary one, then results/.
mkdir -p results
(cd "$tmp" && GALAXY_IMPORTER_CONFIG=$OLDPWD/tests/galaxy-importer.cfg \
  PATH="$OLDPWD/.venv/importer/bin:$PATH" "$OLDPWD/.venv/importer/bin/python" -m galaxy_importer.main \
  "$tarball") | grep -v '^Loading ' | tee results/galaxy-importer.log
mv "$tmp/importer_result.json" results/galaxy-importer.json
if grep '^WARNING' results/galaxy-importer.log \
    | grep -v -q '^WARNING: Ignore files skip ansible-test sanity tests, found ignore-'; then
  echo "galaxy_import: galaxy-importer warned about the tarball (above)." >&2
  exit 1
fi
