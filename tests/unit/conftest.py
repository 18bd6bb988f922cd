# -*- coding: utf-8 -*-
# Copyright: hakeep maintainers
# SPDX-License-Identifier: MIT
"""Makes the repository importable as ansible_collections.hakeep.ha for a plain pytest run
from its root (make ansible-unit); under ansible-test units the collection is on the path
already."""

from __future__ import annotations

import os
import sys

try:
    import ansible_collections.hakeep.ha  # noqa: F401  pylint: disable=unused-import
except ImportError:
    # .collections/ansible_collections/hakeep/ha is a link to the repository's root.
    ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.join(ROOT, ".collections"))
    # ansible_collections may already be imported (a namespace package): extend its path.
    if "ansible_collections" in sys.modules:
        sys.modules["ansible_collections"].__path__.append(
            os.path.join(ROOT, ".collections", "ansible_collections"))
