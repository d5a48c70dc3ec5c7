"""flowml as a training data loader: NVVL's ``VideoDataset`` / ``VideoLoader`` on a flowml graph.

    from flowml.data import VideoDataset, VideoLoader

    data = VideoDataset(files, 5, processing={
        "input": {"scale_factor": 0.25, "dtype": "half"},
        "target": {"index_map": [-1, -1, 0, -1, -1], "dtype": "half"}})
    for batch in VideoLoader(data, batch_size=8, shuffle=True):
        loss = criterion(model(batch["input"]), batch["target"])

See docs/data.md. Decoding and processing are flowml-av's (``capture.clips``).
"""

from .dataset import VideoDataset
from .index import SequenceIndex
from .loader import VideoLoader
from .sampler import ShuffleSampler

__all__ = ["VideoDataset", "VideoLoader", "SequenceIndex", "ShuffleSampler"]
