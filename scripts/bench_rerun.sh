#!/usr/bin/env bash
# How long the README's main command takes on the simulated lab, first and again, and how long
# the paths that should be cheap take when nothing needs to change (issue 18's figures):
#   first run          make run on a lab built from scratch (lab creation included)
#   second make run    make run again (verify and benchmark included), and how many hosts changed
#   converge-only no-op  site.yml --skip-tags verify,benchmark with nothing to change
#   preflight only     site.yml --tags preflight
#   tasks per host     what the converge-only no-op ran on each host (ok, skipped)
# One line per figure, so a change shows up in a diff of two outputs. Runs in this checkout,
# as root (the lab), and destroys any running lab first; the lab of the last topology stays up.
#   scripts/bench_rerun.sh [TOPOLOGY ...]     (default: ring3 ring4; logs in $DGXSPARK_BENCH_LOGS
#                                              or a new directory under /var/tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
topologies=("$@")
[ ${#topologies[@]} -gt 0 ] || topologies=(ring3 ring4)
logs=${DGXSPARK_BENCH_LOGS:-$(mktemp -d /var/tmp/dgxspark-bench-rerun.XXXXXX)}
mkdir -p "$logs"
scripts/bootstrap.sh >/dev/null
export PATH="$PWD/.venv/bin:$PATH"

timed() {  # timed NAME COMMAND... -> seconds on stdout, the output in $logs/NAME.log
  local name=$1 start end
  shift
  start=$(date +%s.%N)
  if ! "$@" >"$logs/$name.log" 2>&1; then
    echo "$name failed, see $logs/$name.log" >&2
    tail -n 30 "$logs/$name.log" >&2
    exit 1
  fi
  end=$(date +%s.%N)
  python3 -c "print(f'{$end - $start:.1f}')"
}

recap() {  # recap LOG -> "host ok=N skipped=M changed=K; ..." from the log's last PLAY RECAP
  python3 - "$1" <<'PY'
import re, sys
text = re.sub(r"\x1b\[[0-9;]*m", "", open(sys.argv[1]).read())
hosts = {}
for m in re.finditer(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+).*?skipped=(\d+)", text, re.M):
    hosts[m.group(1)] = "ok=%s skipped=%s changed=%s" % (m.group(2), m.group(4), m.group(3))
print("; ".join("%s %s" % kv for kv in sorted(hosts.items())))
PY
}

changed_hosts() {  # hosts whose recap says changed > 0
  sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E '^\S+ +: ok=' | grep -c -v 'changed=0' || true
}

ansible-playbook playbooks/lab.yml -e lab_state=absent >/dev/null
for topology in "${topologies[@]}"; do
  export DGXSPARK_LAB_TOPOLOGY=$topology
  first=$(timed "$topology-first-run" make run)
  second=$(timed "$topology-second-run" make run)
  noop=$(timed "$topology-converge-noop" ansible-playbook -i inventory/lab.yml site.yml \
    --skip-tags verify,benchmark)
  preflight=$(timed "$topology-preflight" ansible-playbook -i inventory/lab.yml site.yml \
    --tags preflight)
  echo "$topology first run (lab creation included): ${first} s"
  echo "$topology second make run: ${second} s, hosts with changes: $(changed_hosts "$logs/$topology-second-run.log")"
  echo "$topology converge-only no-op (--skip-tags verify,benchmark): ${noop} s, hosts with changes: $(changed_hosts "$logs/$topology-converge-noop.log")"
  echo "$topology preflight only (--tags preflight): ${preflight} s"
  echo "$topology tasks per host in the converge-only no-op: $(recap "$logs/$topology-converge-noop.log")"
  if [ "$topology" != "${topologies[-1]}" ]; then
    ansible-playbook playbooks/lab.yml -e lab_state=absent >/dev/null
  fi
done
echo "logs: $logs"
