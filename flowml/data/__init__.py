"""flowml as a training data loader: NVVL's ``VideoDataset`` / ``VideoLoader`` on a flowml graph.

    from flowml.data import VideoDataset, VideoLoader

    data = VideoDataset(files, 5, processing={
        "input": {"scale_factor": 0.25, "dtype": "half"},
        "target": {"index_map": [-1, -1, 0, -1, -1], "dtype": "half"}})
    for batch in VideoLoader(data, batch_size=8, shuffle=True):
        loss = criterion(model(batch["input"]), batch["target"])

See docs/data.md. Decoding and processing are flowml-av's (``capture.clips``).
"""

from importlib import import_module
from typing import Any

_WHERE = {"VideoDataset": ".dataset", "SequenceIndex": ".index", "VideoLoader": ".loader",
          "ShuffleSampler": ".sampler"}


def __getattr__(name: str) -> Any:  # imported on first use: graph validation stays torch-free
    if name not in _WHERE:
        raise AttributeError(f"module 'flowml.data' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name], __name__), name)


__all__ = ["VideoDataset", "VideoLoader", "SequenceIndex", "ShuffleSampler"]
