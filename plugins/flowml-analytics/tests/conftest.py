"""``cuda``-marked tests skip cleanly where torch sees no GPU."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none here)")
    for item in items:
        if "cuda" in item.keywords and "flowml-analytics" in str(item.fspath):
            item.add_marker(skip)
