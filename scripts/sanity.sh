#!/usr/bin/env bash
# ansible-test sanity on the collection, locally (no containers), with the Python of .venv/.
# Extra arguments go to ansible-test, e.g. `scripts/sanity.sh --test pylint`.
#
# ansible-test wants the collection at .../ansible_collections/dgxspark/cluster and reads
# through symlinks to the real path, so it runs on a copy of the files git tracks (and the
# untracked ones git does not ignore) in a temporary directory. Each sanity test with
# requirements gets a virtualenv of ansible-test's own pins under ~/.ansible/test/venv/ (made
# once, from PyPI; warm afterwards). Ignore entries: tests/sanity/ignore-<core major.minor>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$PWD/.venv

py=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# ansible-test bootstraps pip in each new sanity virtualenv with a get-pip.py it downloads
# from ci-files.testing.ansible.com; give it the stand-in when that cache entry is missing.
pip=$("$venv/bin/python" -c 'import sys, types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="%d.%d" % sys.version_info[:2]))["pip"])')
cache=~/.ansible/test/cache/get_pip_${pip//./_}.py
if [ ! -s "$cache" ]; then
  mkdir -p "$(dirname "$cache")"
  cp scripts/get_pip_standin.py "$cache"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tree=$tmp/ansible_collections/dgxspark/cluster
mkdir -p "$tree"
# (.collections/ holds the checkout's own symlink to itself, for ansible-playbook.)
git ls-files -z --cached --others --exclude-standard | grep -zv '^\.collections/' \
  | xargs -0 cp -P --parents -t "$tree"
cd "$tree"
"$venv/bin/ansible-test" sanity --python "$py" --color no "$@"
