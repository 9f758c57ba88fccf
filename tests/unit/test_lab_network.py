"""lab_network's host commands: a link that vanished between listing and deleting is gone
(the kernel tears a deleted namespace's veth ends down asynchronously), any other failure
fails the task with the command and iproute2's message."""
from __future__ import annotations

import pytest

from ansible_collections.dgxspark.cluster.plugins.modules import lab_network


class Failed(Exception):
    pass


class FakeModule(object):
    check_mode = False

    def __init__(self, rc, err):
        self.result = (rc, "", err)

    def run_command(self, args):
        return self.result

    def fail_json(self, **kwargs):
        raise Failed(kwargs)


@pytest.mark.parametrize("err", [
    "RTNETLINK answers: No such device\n",      # ip link del (CI, stop 22)
    'Cannot find device "dgx2p00"\n',           # ip link set/show
])
def test_delete_of_a_link_already_gone_is_not_a_failure(err):
    host = lab_network.Host(FakeModule(2, err))
    assert host.run(["ip", "link", "del", "dgx2p00"], gone_ok=True) == ""
    assert host.actions == ["ip link del dgx2p00"]


@pytest.mark.parametrize("gone_ok,err", [
    (False, "RTNETLINK answers: No such device\n"),   # only deletions may find it gone
    (True, "RTNETLINK answers: Operation not permitted\n"),
])
def test_other_failures_fail_with_the_command_and_message(gone_ok, err):
    host = lab_network.Host(FakeModule(2, err))
    with pytest.raises(Failed) as caught:
        host.run(["ip", "link", "del", "dgx2p00"], gone_ok=gone_ok)
    assert caught.value.args[0]["msg"] == "ip link del dgx2p00 failed: %s" % err.strip()
