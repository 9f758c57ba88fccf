#!/usr/bin/env bash
# Creates or refreshes the project's virtualenv at .venv/ from requirements.txt and checks
# that the collections bundled with the `ansible` package satisfy requirements.yml.
# Idempotent and quick when nothing changed (a stamp records the requirements' hash).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: $python is missing or older than 3.11 (ansible-core 2.19 needs 3.11+)." >&2
  echo "bootstrap: set PYTHON=/path/to/python3.11 and run again." >&2
  exit 2
fi

stamp=.venv/.requirements.sha256
want=$(sha256sum < requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing Python dependencies into .venv/ (first run takes a minute)"
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt 2>&1 \
    | grep -v '^WARNING: Location' || true
  .venv/bin/python -c 'import ansible, ansible_runner, molecule, netaddr, yaml, jinja2' \
    || { echo "bootstrap: the virtualenv is incomplete; see the pip output above." >&2; exit 1; }
  echo "$want" > "$stamp"
fi

# The collections come from the `ansible` wheel (Galaxy may be unreachable): check them.
.venv/bin/python scripts/check_collections.py requirements.yml
