"""module_utils/controller.finish: how a compute result leaves a module."""
from __future__ import annotations

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils.controller import finish


class Module:
    def __init__(self):
        self.warned, self.exited, self.failed = [], None, None

    def warn(self, text):
        self.warned.append(text)

    def exit_json(self, **kw):
        self.exited = kw
        raise SystemExit(0)

    def fail_json(self, **kw):
        self.failed = kw
        raise SystemExit(1)


def test_a_result_exits_unchanged_with_its_warnings_as_module_warnings():
    module = Module()
    with pytest.raises(SystemExit):
        finish(module, {"plan": {"a": 1}, "warnings": ["w1", "w2"]})
    assert module.warned == ["w1", "w2"] and module.failed is None
    assert module.exited == {"plan": {"a": 1}, "changed": False}


def test_a_failure_fails_with_its_fields():
    module = Module()
    with pytest.raises(SystemExit):
        finish(module, {"failed": True, "msg": "m", "variable": "fabric_nodes", "fix": "f"})
    assert module.failed == {"msg": "m", "variable": "fabric_nodes", "fix": "f"}
    assert module.exited is None
