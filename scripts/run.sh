#!/usr/bin/env bash
# The main job. Bootstraps .venv/, then brings a cluster to a benchmarked state with site.yml:
#   * no inventory given: builds the simulated lab (a 3-node ring of simulated Sparks on this
#     machine, root needed) and runs site.yml against it;
#   * DGXSPARK_INVENTORY=path/to/your/sparks.yml: runs site.yml against your Sparks.
# Extra arguments go to ansible-playbook (for example -e dgxspark_recipe=glm52, --tags verify).
# DGXSPARK_LAB_TOPOLOGY picks the lab's cabling (ring3, ring4, switch; default ring3).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
inventory=${DGXSPARK_INVENTORY:-}
if [ -z "$inventory" ]; then
  inventory=inventory/lab.yml
  ansible-playbook playbooks/lab.yml -e "lab_topology=${DGXSPARK_LAB_TOPOLOGY:-ring3}" \
    -e "lab_inventory_path=$PWD/$inventory"
fi
ansible-playbook -i "$inventory" site.yml "$@"
echo
echo "Results: $PWD/results/ (one benchmark JSON per run); the API of the cluster is printed above."
