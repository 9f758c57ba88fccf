#!/usr/bin/env bash
# Every test. Bootstraps .venv/, then runs three streams side by side, each stopping at its
# first failing stage:
#   lab     - the longest scenario, cluster3 (site.yml, the real engine, the faults), on the lab
#             of the lab role's defaults (/var/lib/dgxspark-lab);
#   lab2    - the others (ray3, cluster4, switch4, preflight) and the lab test that injects
#             fabric faults, on a second lab beside the first (molecule/_lab/second_lab.yml:
#             its own lab_dir, prefix and management network);
#   checks  - everything else: the virtual-heads proof on the real engine (no lab node), the
#             unit and integration tests, ruff, ansible-lint (production profile),
#             ansible-test sanity and galaxy-importer on the built tarball.
# Much of a lab's time is waiting (nodes booting, engines joining, stops), so on two cores the
# streams together take little longer than the longest alone. Each stream's whole output is
# kept in results/<stream>.log; the checks are printed at the end with the labs' stage lines,
# and a failing stream's failures after them, where a CI log's tail shows them.
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

# Every stream uses the lab's caches (under /var/cache/dgxspark-lab: the nodes' root file
# system, the stand-in image, the engine, the tiny models): build them once first, so that no
# two streams build the same cache at the same time.
if [ "$(id -u)" = 0 ]; then
  echo "== the lab's caches (minutes the first time) [$(stamp)]"
  ansible-playbook playbooks/lab_caches.yml > results/lab-caches.log 2>&1 \
    || { tail -n 60 results/lab-caches.log; echo "== building the lab caches failed"; exit 2; }
fi

# Molecule runs on the collection installed in ~/.ansible/collections (its prerun installs the
# checkout there before every run). Two runs at once would race on it: install it once here,
# where molecule would (not into .collections/, which is this checkout), and let the runs skip
# their prerun (.config/molecule/make-test.yml).
echo "== this checkout installed for molecule (~/.ansible/collections) [$(stamp)]"
ansible-galaxy collection install --force -p "$HOME/.ansible/collections" . \
  > results/collection-install.log 2>&1 \
  || { cat results/collection-install.log; echo "== installing the collection failed"; exit 2; }

# Every scenario runs in exactly one lab stream (checked below, so a new one is not left out).
LAB_SCENARIOS=(cluster3)
LAB2_SCENARIOS=(ray3 cluster4 switch4 preflight)

scenarios() {
  local scenario
  for scenario in "$@"; do
    echo "== molecule: $scenario [$(stamp)]"
    # (molecule 26 may log "CRITICAL 'molecule/default/molecule.yml' glob failed" while it
    # looks for a default scenario; there is none on purpose.)
    molecule -c .config/molecule/make-test.yml test -s "$scenario"
  done
}

lab_stream() {
  scenarios "${LAB_SCENARIOS[@]}"
  echo "== lab stream passed [$(stamp)]"
}

lab2_stream() {
  scenarios "${LAB2_SCENARIOS[@]}"
  echo "== lab test: fabric faults on a 3-node ring [$(stamp)]"
  pytest --durations=5 tests/lab/test_fabric_faults.py
  echo "== lab2 stream passed [$(stamp)]"
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

listed=$(printf '%s\n' "${LAB_SCENARIOS[@]}" "${LAB2_SCENARIOS[@]}" | sort)
present=$(for file in molecule/*/molecule.yml; do basename "$(dirname "$file")"; done | sort)
if [ "$listed" != "$present" ]; then
  echo "== scripts/test.sh runs the scenarios [${listed//$'\n'/ }] but molecule/ has [${present//$'\n'/ }]:"
  echo "   add the new scenario to LAB_SCENARIOS or LAB2_SCENARIOS"
  exit 2
fi

echo "== three streams: lab, lab2 and checks (results/<stream>.log) [$(stamp)]"
declare -A pids rcs
(set -euo pipefail; lab_stream) > results/lab.log 2>&1 &
pids[lab]=$!
(set -euo pipefail; lab2_stream) > results/lab2.log 2>&1 &
pids[lab2]=$!
(set -euo pipefail; checks_stream) > results/checks.log 2>&1 &
pids[checks]=$!
for stream in checks lab2 lab; do
  rcs[$stream]=0
  wait "${pids[$stream]}" || rcs[$stream]=$?
  echo "== $stream stream ended (exit ${rcs[$stream]}) [$(stamp)]"
done

echo "================================ checks (results/checks.log)"
cat results/checks.log
for stream in lab lab2; do
  echo "================================ $stream (results/$stream.log; molecule's task lines left out)"
  grep -a -E '^== |➜|actions=|^=+ .*(passed|failed|error)' "results/$stream.log" || true
done

status=0
if [ "${rcs[checks]}" != 0 ]; then
  echo "== the checks stream failed (exit ${rcs[checks]}); its last lines:"
  tail -n 80 results/checks.log
  status=2
fi
for stream in lab lab2; do
  if [ "${rcs[$stream]}" != 0 ]; then
    echo "== the $stream stream failed (exit ${rcs[$stream]}); the failing tasks (from results/$stream.log):"
    grep -a -n -E -A40 '^(fatal|failed): |FAILED!|^ERROR|UNREACHABLE!|^E  ' "results/$stream.log" | tail -200
    status=2
  fi
done
[ "$status" = 0 ] && echo "== all tests passed [$(stamp)]"
exit "$status"
