# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Every pass/fail decision about hosts and a running cluster, in plain Python: facts in,
findings out (what was seen, what to change). ``hosts``: checks of a node before a launch;
``verify``: checks of a running cluster."""
