"""The fabric verification fails for the right reason on faults the lab injects.

Builds a 3-node ring lab (the second lab, molecule/_lab/second_lab.yml, so that it runs beside
the molecule scenarios' lab), converges the fabric, then rewires the host side (a swapped
cable at spark2, a 1500-byte hop, a link without carrier, all at once on cables that share no
port) and checks that the fabric role fails naming each fault where it is and no fault
elsewhere, and passes again once the faults are removed.
"""
from __future__ import annotations

import pytest

from lab_helpers import SECOND_LAB, SECOND_LAB_INVENTORY, failure_messages, needs_root, play

# (playbooks/lab.yml writes inventory/lab.yml unless told where: the second lab's lab_dir)
LAB = dict(SECOND_LAB, lab_topology="ring3", lab_inventory_path=SECOND_LAB_INVENTORY)
NODES = {"spark1", "spark2", "spark3"}

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def ring3(tmp_path_factory):
    needs_root()
    tmp = tmp_path_factory.mktemp("ring3")
    status, runner = play(tmp / "create", "playbooks/lab.yml", LAB)
    assert status == "successful", runner.stdout.read()[-3000:]
    status, runner = play(tmp / "converge", "playbooks/fabric.yml",
                          inventory=[SECOND_LAB_INVENTORY])
    assert status == "successful", runner.stdout.read()[-3000:]
    # a play that matched no host "succeeds" too: the fabric must have run on every node
    assert set(runner.stats["ok"]) == NODES, runner.stdout.read()[-3000:]
    yield tmp
    # A teardown that failed would leave the next lab (molecule's) a half-removed one: say so.
    status, runner = play(tmp / "destroy", "playbooks/lab.yml", dict(LAB, lab_state="absent"))
    assert status == "successful", runner.stdout.read()[-3000:]


def inject(tmp, name, faults):
    status, runner = play(tmp / ("lab-" + name), "playbooks/lab.yml",
                          dict(LAB, lab_faults=faults))
    assert status == "successful", runner.stdout.read()[-3000:]


def verify(tmp, name):
    return play(tmp / ("fabric-" + name), "playbooks/fabric.yml",
                inventory=[SECOND_LAB_INVENTORY])


# Three faults at once, on cables that do not share a port, so one verification must name
# each for what it is (and nothing else): spark2's two cables swapped (spark1 P0 - spark2 P1
# and spark2 P0 - spark3 P1), a 1500-byte hop on twin 0 of the third cable (spark3 P0 -
# spark1 P1), and no carrier on twin 1 of that cable.
FAULTS = [{"kind": "swap", "node": "spark2"},
          {"kind": "mtu", "node": "spark3", "port": "P0", "twin": 0, "mtu": 1500},
          {"kind": "down", "node": "spark3", "port": "P0", "twin": 1}]
EXPECTED = {
    "swapped cable": ["swapped cable: spark1/enp1s0f0np0 (P0) is cabled to spark2/enp1s0f0np0 (P0)",
                      "spark3/enp1s0f1np1 (P1) is cabled to spark2/enp1s0f1np1 (P1)"],
    "MTU mismatch": ["MTU mismatch: spark3/enp1s0f0np0 (P0) reaches spark1/enp1s0f1np1 (P1) with "
                     "1500-byte frames but not with 9000-byte frames", "a hop between them"],
    "no carrier": ["spark3/enP2p1s0f0np0 (P0) has no carrier"],
}
# The ports each kind of finding may name: a finding elsewhere is a misdiagnosis.
WHERE = {
    "swapped cable": "spark2/",
    "MTU mismatch": "spark3/enp1s0f0np0",
    "no carrier": "spark3/enP2p1s0f0np0",
}


def test_verification_names_each_injected_fault_and_passes_once_cleared(ring3):
    inject(ring3, "faults", FAULTS)
    try:
        status, runner = verify(ring3, "faults")
        assert status == "failed"
        messages = failure_messages(runner)
        for texts in EXPECTED.values():
            for text in texts:
                assert text in messages, messages
        findings = [f.strip() for f in messages.split(" | ")]
        for kind, port in WHERE.items():
            for finding in findings:
                if kind in finding:
                    assert port in finding, (kind, finding, messages)
    finally:
        inject(ring3, "clear", [])
    status, runner = verify(ring3, "after")
    assert status == "successful", failure_messages(runner)
    assert set(runner.stats["ok"]) == NODES, runner.stdout.read()[-3000:]
