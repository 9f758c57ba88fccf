#!/usr/bin/env bash
# The main job. Bootstraps .venv/, then prints the preflight report of the bundled recipes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
exec ansible-playbook playbooks/preflight_report.yml "$@"
