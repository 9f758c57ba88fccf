"""The fabric verification fails for the right reason on faults the lab injects.

Builds a 3-node ring lab, converges the fabric, then rewires the host side (a swapped
cable at spark2, a 1500-byte hop, a link without carrier) and checks that the fabric role
fails naming exactly that fault, and passes again once the fault is removed.
"""
from __future__ import annotations

import pytest

from lab_helpers import LAB_INVENTORY, failure_messages, needs_root, play

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def ring3(tmp_path_factory):
    needs_root()
    tmp = tmp_path_factory.mktemp("ring3")
    status, runner = play(tmp / "create", "playbooks/lab.yml",
                          {"lab_topology": "ring3", "lab_inventory_path": LAB_INVENTORY})
    assert status == "successful", runner.stdout.read()[-3000:]
    status, runner = play(tmp / "converge", "playbooks/fabric.yml", inventory=[LAB_INVENTORY])
    assert status == "successful", runner.stdout.read()[-3000:]
    yield tmp
    play(tmp / "destroy", "playbooks/lab.yml", {"lab_state": "absent"})


def inject(tmp, name, faults):
    status, runner = play(tmp / ("lab-" + name), "playbooks/lab.yml",
                          {"lab_topology": "ring3", "lab_faults": faults,
                           "lab_inventory_path": LAB_INVENTORY})
    assert status == "successful", runner.stdout.read()[-3000:]


def verify(tmp, name):
    return play(tmp / ("fabric-" + name), "playbooks/fabric.yml", inventory=[LAB_INVENTORY])


@pytest.mark.parametrize("name,faults,expected", [
    ("swap", [{"kind": "swap", "node": "spark2"}],
     ["swapped cable: spark1/enp1s0f0np0 (P0) is cabled to spark2/enp1s0f0np0 (P0)",
      "spark3/enp1s0f1np1 (P1) is cabled to spark2/enp1s0f1np1 (P1)"]),
    ("mtu", [{"kind": "mtu", "node": "spark1", "port": "P0", "twin": 0, "mtu": 1500}],
     ["MTU mismatch: spark1/enp1s0f0np0 (P0) reaches spark2/enp1s0f1np1 (P1) with "
      "1500-byte frames but not with 9000-byte frames", "a hop between them"]),
    ("down", [{"kind": "down", "node": "spark3", "port": "P0", "twin": 1}],
     ["spark3/enP2p1s0f0np0 (P0) has no carrier"]),
])
def test_verification_names_the_injected_fault(ring3, name, faults, expected):
    inject(ring3, name, faults)
    try:
        status, runner = verify(ring3, name)
        assert status == "failed"
        messages = failure_messages(runner)
        for text in expected:
            assert text in messages, messages
        other = {"swap": "MTU mismatch", "mtu": "swapped cable", "down": "swapped cable"}[name]
        assert other not in messages
    finally:
        inject(ring3, "clear-" + name, [])
    status, runner = verify(ring3, "after-" + name)
    assert status == "successful", failure_messages(runner)
