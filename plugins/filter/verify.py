# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the verify role (every decision is in module_utils/findings/verify.py)."""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.dgxspark.cluster.plugins.module_utils.findings import verify
from ansible_collections.dgxspark.cluster.plugins.plugin_utils.filters import named, need


def verify_report(inputs):
    if not isinstance(inputs, dict) or "url" not in inputs or "executor" not in inputs:
        raise AnsibleFilterError("verify_report takes the dict of gathered facts the verify role "
                                 "builds (url, served, executor, ...)")
    return verify.report(inputs)


@named("verify_reference_request")
def verify_reference_request(reference):
    reference = need("_input", reference, dict, "pass the model's dgxspark-reference.json as a dict")
    if not reference.get("requests"):
        raise AnsibleFilterError("verify_reference_request: the reference has no requests")
    return verify.reference_request(reference)


@named("verify_worker_list")
def verify_worker_list(stdout):
    return verify.worker_list(need("_input", stdout, str, "pass the command's stdout"))


class FilterModule(object):
    def filters(self):
        return {"verify_report": verify_report, "verify_reference_request": verify_reference_request,
                "verify_worker_list": verify_worker_list}
