import numpy as np
import pytest
import torch
from PIL import Image

from flowml import NodeError
from flowml.testing import NodeHarness, run_node
from flowml_std.still import ImageSource


@pytest.fixture
def png(tmp_path):
    pixels = np.zeros((4, 6, 3), np.uint8)
    pixels[0, 0] = (255, 0, 0)
    pixels[3, 5] = (0, 128, 255)
    Image.fromarray(pixels).save(tmp_path / "still.png")
    return tmp_path


def test_loads_exact_pixels_relative_to_graph_dir(png):
    image = run_node(ImageSource, params={"path": "still.png"}, graph_dir=png)["image"]
    assert image.shape == (1, 3, 4, 6) and image.dtype == torch.float32
    assert image[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert torch.allclose(image[0, :, 3, 5], torch.tensor([0.0, 128 / 255, 1.0]))


def test_resize_alpha_and_cached_tensor(png):
    with NodeHarness(ImageSource, {"path": "still.png", "size": [12, 8], "alpha": True}, graph_dir=png) as h:
        a, b = h.process()["image"], h.process()["image"]
    assert a.shape == (1, 4, 8, 12)
    assert torch.all(a[:, 3] == 1.0)  # opaque
    assert a is b  # loaded once


def test_missing_and_broken_files_say_what_to_do(tmp_path):
    with pytest.raises(NodeError, match=r"not found: .*nope\.png.*relative to the graph file"):
        run_node(ImageSource, params={"path": "nope.png"}, graph_dir=tmp_path)
    (tmp_path / "bad.png").write_text("not a picture")
    with pytest.raises(NodeError, match="cannot read image"):
        run_node(ImageSource, params={"path": "bad.png"}, graph_dir=tmp_path)
