# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Tool-calling evaluation of an OpenAI-compatible endpoint (plain Python, no Ansible).

* ``scenarios``: the scenario files (YAML or JSON): loading, validation, selection.
* ``client``: one chat completion (streamed or not) through an injected transport.
* ``runner``: a scenario's multi-turn conversation with simulated tool results, the whole set,
  the concurrency sweep.
* ``checks``: the deterministic checker of every category (PASS / PARTIAL / FAIL, a reason).
* ``report``: the scores, the JSON documents, the console table and the regression gate.
"""
