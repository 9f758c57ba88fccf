#!/usr/bin/env bash
# End-to-end time of the README's main command (make run) on a fresh clone of this repository:
# first run (virtualenv, lab creation, fabric, pruning, image, launch, verification, benchmark)
# and a second run (nothing to change). Destroys any running lab first and leaves the new one
# up. The debootstrap root file system and the stand-in image archive are cached under
# /var/cache/dgxspark-lab between runs; delete that directory to time a truly cold machine.
#   scripts/e2e_timing.sh [DEST_DIR]
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
dest=${1:-$(mktemp -d /var/tmp/dgxspark-e2e.XXXXXX)}
if [ -x "$src/.venv/bin/ansible-playbook" ]; then
  (cd "$src" && .venv/bin/ansible-playbook playbooks/lab.yml -e lab_state=absent >/dev/null) || true
fi
git clone --quiet "$src" "$dest/clone"
cd "$dest/clone"
run() {
  local name=$1 start end
  start=$(date +%s)
  make run > "$dest/$name.log" 2>&1 || { echo "$name failed, see $dest/$name.log" >&2; tail -30 "$dest/$name.log" >&2; exit 1; }
  end=$(date +%s)
  echo $((end - start))
}
first=$(run first-run)
second=$(run second-run)
changed=$(grep -E '^(spark|localhost)[^ ]* +: ok=' "$dest/second-run.log" | grep -c -v 'changed=0' || true)
cat <<REPORT
make run on a fresh clone ($dest/clone), $(nproc) cores:
  first run (bootstrap, lab, fabric, prune, image, cluster, verify, benchmark): ${first} s
  second run (nothing to change):                                            ${second} s
  hosts with changes in the second run's play recaps:                        ${changed}
logs: $dest/first-run.log $dest/second-run.log
REPORT
