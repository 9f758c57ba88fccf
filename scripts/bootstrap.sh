#!/usr/bin/env bash
# Creates or refreshes the project's virtualenv at .venv/ from requirements.txt (and
# galaxy-importer's at .venv/importer/ from requirements-importer.txt) and checks that the
# collections bundled with the `ansible` package satisfy requirements.yml.
# Idempotent and quick when nothing changed (a stamp records each requirements file's hash).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: $python is missing or older than 3.11 (ansible-core 2.19 needs 3.11+)." >&2
  echo "bootstrap: set PYTHON=/path/to/python3.11 and run again." >&2
  exit 2
fi

# make_venv DIR REQUIREMENTS IMPORTS MESSAGE: installs REQUIREMENTS into the virtualenv DIR when
# DIR is new or the file changed since the last install (a stamp in DIR records its hash); then
# IMPORTS must import.
make_venv() {
  local dir=$1 requirements=$2 imports=$3 message=$4 want
  want=$(sha256sum < "$requirements" | cut -d' ' -f1)
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  echo "bootstrap: $message"
  [ -x "$dir/bin/python" ] || "$python" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 \
    | grep -v '^WARNING: Location' || true
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" 2>&1 \
    | grep -v '^WARNING: Location' || true
  "$dir/bin/python" -c "import $imports" \
    || { echo "bootstrap: $dir/ is incomplete; see the pip output above." >&2; exit 1; }
  echo "$want" > "$dir/.requirements.sha256"
}

make_venv .venv requirements.txt "ansible, ansible_runner, molecule, netaddr, yaml, jinja2" \
  "installing Python dependencies into .venv/ (first run takes a minute)"
# galaxy-importer (make test's Galaxy import check) caps some of .venv's packages below what
# requirements.txt wants: it gets a virtualenv of its own inside .venv/, from its own file.
make_venv .venv/importer requirements-importer.txt galaxy_importer.main \
  "installing galaxy-importer into .venv/importer/"

# The collections come from the `ansible` wheel (Galaxy may be unreachable): check them.
.venv/bin/python scripts/check_collections.py requirements.yml
