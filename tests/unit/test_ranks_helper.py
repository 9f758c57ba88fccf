"""roles/vllm_cluster/files/dgxspark-ranks: who is in the engine's process group, from ss."""
from __future__ import annotations

import importlib.machinery
import importlib.util

from conftest import ROOT

PATH = ROOT / "roles/vllm_cluster/files/dgxspark-ranks"
_loader = importlib.machinery.SourceFileLoader("dgxspark_ranks", str(PATH))
_spec = importlib.util.spec_from_loader("dgxspark_ranks", _loader)
ranks = importlib.util.module_from_spec(_spec)
_loader.exec_module(ranks)

# `ss -Hn -t state established` on a head serving TP3 (recorded in the lab; port 29501 is
# the rendezvous store, the others are vLLM's message queues and gloo pairs).
HEAD_SS = """\
0      0               10.20.0.11:38787          10.20.4.13:50580
0      0               10.20.0.11:36183          10.20.2.12:42434
0      0      [::ffff:10.20.0.11]:29501 [::ffff:10.20.2.12]:57992
0      0      [::ffff:10.20.0.11]:29501 [::ffff:10.20.4.13]:54996
0      0      [::ffff:10.20.0.11]:29501 [::ffff:10.20.0.11]:52126
0      0      [::ffff:10.20.0.11]:52126 [::ffff:10.20.0.11]:29501
0      0               10.99.0.11:22               10.99.0.1:51322
"""
WORKER_SS = """\
0      0      [::ffff:10.20.2.12]:57992 [::ffff:10.20.0.11]:29501
0      0               10.20.2.12:42434          10.20.0.11:36183
"""


def test_the_head_sees_every_worker_on_its_rendezvous_port():
    assert ranks.peers(HEAD_SS, 29501, "local") == {"10.20.2.12", "10.20.4.13", "10.20.0.11"}
    assert ranks.peers(HEAD_SS, 29502, "local") == set()


def test_a_worker_sees_its_connection_to_the_head():
    assert ranks.peers(WORKER_SS, 29501, "remote") == {"10.20.0.11"}
    assert ranks.peers(WORKER_SS.splitlines()[1], 29501, "remote") == set()


def test_summary_names_the_members_head_first():
    line, members = ranks.summary(["10.20.2.12", "10.20.4.13"], {"10.20.2.12"}, 29501,
                                  "10.20.0.11")
    assert line == "ranks: 2 of 3 nodes in the engine's process group (port 29501)"
    assert members == ["10.20.0.11", "10.20.2.12"]


def test_addresses_of_every_form_split():
    assert ranks.split_address("[::ffff:10.0.0.1]:29501") == ("10.0.0.1", 29501)
    assert ranks.split_address("10.0.0.1:22") == ("10.0.0.1", 22)
    assert ranks.split_address("[fe80::1%eth0]:80") == ("fe80::1%eth0", 80)
    assert ranks.split_address("*:29501") == ("*", 29501)
    assert ranks.split_address("users:((") is None


def test_a_listener_on_the_port_is_named():
    listening = ('0  2048  *:29501  *:*  users:(("python3",pid=77,fd=9))\n'
                 '0  128  0.0.0.0:22  0.0.0.0:*  users:(("sshd",pid=1,fd=3))\n')
    assert ranks.listeners(listening, 29501) == [
        '0  2048  *:29501  *:*  users:(("python3",pid=77,fd=9))']
    assert ranks.listeners(listening, 29502) == []


def test_a_node_that_connects_from_its_cable_address_is_recognised():
    # spark2 is cabled to the head: it reaches the head's identity from the cable's own
    # address (10.20.0.12), not from its identity 10.20.2.12.
    ss = "0 0 [::ffff:10.20.0.11]:29501 [::ffff:10.20.0.12]:41000\n"
    nodes = ranks.expected_nodes(["10.20.2.12=10.20.2.12,10.20.0.12,10.20.3.12", "10.20.4.13"])
    assert nodes[1] == ("10.20.4.13", {"10.20.4.13"})
    assert ranks.present(nodes, ranks.peers(ss, 29501, "local")) == ["10.20.2.12"]
