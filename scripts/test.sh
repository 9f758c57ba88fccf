#!/usr/bin/env bash
# Every test. Bootstraps .venv/, then runs two streams side by side, each stopping at its first
# failing stage:
#   lab    - the simulated lab, one lab at a time: the molecule scenarios, then the lab test
#            that builds its own ring (tests/lab/test_fabric_faults.py);
#   checks - everything else: the virtual-heads proof on the real engine (no lab node), the unit
#            and integration tests, ruff, ansible-lint (production profile), ansible-test sanity
#            and galaxy-importer on the built tarball.
# Much of the lab's time is waiting (nodes booting, engines joining, stops), so on two cores
# the streams together take little longer than the lab alone. Each stream's whole output is
# kept in results/lab.log and results/checks.log; both are printed at the end, and a failing
# stream's failures again after them, where a CI log's tail shows them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
export DGXSPARK_LAB_TESTS=1

# The model role's integration test copies through a real rsync daemon on 127.0.0.1, and
# ansible-test sanity's shellcheck test skips itself without shellcheck: install both (root,
# apt, as the lab gives its nodes rsync) instead of skipping those tests.
missing=()
for tool in rsync shellcheck; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ "$(id -u)" = 0 ] && [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  echo "== installing ${missing[*]} (the model role's distribution test, ansible-test's shellcheck)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi

mkdir -p results
started=$(date +%s)
stamp() { printf '%s +%ds' "$(date -u +%H:%M:%S)" $(( $(date +%s) - started )); }

# Both streams use the lab's engine and tiny models (cached under /var/cache/dgxspark-lab):
# build them once first, so the streams never build the same cache at the same time.
if [ "$(id -u)" = 0 ]; then
  echo "== the lab's engine and tiny models (cached; minutes the first time) [$(stamp)]"
  ansible-playbook playbooks/lab_engine.yml > results/lab-engine.log 2>&1 \
    || { tail -n 60 results/lab-engine.log; echo "== building the lab's engine failed"; exit 2; }
fi

lab_stream() {
  echo "== molecule scenarios [$(stamp)]"
  # (molecule 26 logs "CRITICAL 'molecule/default/molecule.yml' glob failed" once while it
  # looks for a default scenario; there is none on purpose, and every scenario below runs.)
  molecule test --all
  echo "== lab test: fabric faults on a 3-node ring [$(stamp)]"
  pytest --durations=5 tests/lab/test_fabric_faults.py
  echo "== lab stream passed [$(stamp)]"
}

checks_stream() {
  echo "== pytest: the virtual-heads proof on the real engine, unit and integration tests [$(stamp)]"
  # The engine runs first, while the lab stream is still building its lab.
  pytest --durations=15 tests/lab/test_virtual_heads.py tests/unit tests/integration \
    tests/differential
  echo "== ruff (Python: pyflakes rules) [$(stamp)]"
  ruff check --select F,E9 plugins tests scripts
  echo "== ansible-lint (production profile) [$(stamp)]"
  ansible-lint
  echo "== ansible-test sanity (every test, the Python of .venv/, no containers) [$(stamp)]"
  scripts/sanity.sh
  echo "== galaxy-importer on the built tarball [$(stamp)]"
  scripts/galaxy_import.sh
  echo "== checks stream passed [$(stamp)]"
}

echo "== two streams: lab (results/lab.log) and checks (results/checks.log) [$(stamp)]"
(set -euo pipefail; lab_stream) > results/lab.log 2>&1 &
lab=$!
(set -euo pipefail; checks_stream) > results/checks.log 2>&1 &
checks=$!
lab_rc=0; checks_rc=0
wait "$checks" || checks_rc=$?
echo "== checks stream ended (exit $checks_rc) [$(stamp)]"
wait "$lab" || lab_rc=$?
echo "== lab stream ended (exit $lab_rc) [$(stamp)]"

echo "================================ checks (results/checks.log)"
cat results/checks.log
echo "================================ lab (results/lab.log; molecule's task lines left out)"
# the stage lines, molecule's actions and recaps, pytest's summary: the whole log is kept
grep -E '^== |➜|actions=|^=+ .*(passed|failed|error)' results/lab.log || true

status=0
if [ "$checks_rc" != 0 ]; then
  echo "== the checks stream failed (exit $checks_rc); its last lines:"
  tail -n 80 results/checks.log
  status=2
fi
if [ "$lab_rc" != 0 ]; then
  echo "== the lab stream failed (exit $lab_rc); the failing tasks (from results/lab.log):"
  grep -n -E -A12 '^(fatal|failed): |FAILED!|^ERROR|UNREACHABLE!|^E  ' results/lab.log | tail -150
  status=2
fi
[ "$status" = 0 ] && echo "== all tests passed [$(stamp)]"
exit "$status"
