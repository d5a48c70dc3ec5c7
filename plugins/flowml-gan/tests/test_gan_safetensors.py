"""stylegan.generator from a ``.safetensors`` state dict: init kwargs in its metadata or in a
sidecar JSON, else a clear error."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from flowml import NodeError
from flowml.testing import run_node
from flowml_gan.nodes import StyleGANGenerator, StyleGANLatent
from flowml_gan.safetensors_io import save_generator_safetensors
from flowml_gan.snapshot import load_generator

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def snap(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("build_stylegan", ROOT / "models" / "build_stylegan.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build.build(tmp_path_factory.mktemp("models"), resolution=32, small=True)


def test_a_safetensors_generator_gives_the_snapshots_image(snap):
    folder = snap.parent
    G = load_generator(snap)
    save_generator_safetensors(G, folder / "g.safetensors")
    w = run_node(StyleGANLatent, params={"path": snap.name, "seed": 4}, graph_dir=folder)["w"]
    want = run_node(StyleGANGenerator, {"w": w}, {"path": snap.name}, graph_dir=folder)["image"]
    got = run_node(StyleGANGenerator, {"w": w}, {"path": "g.safetensors",
                                                 "edits": [{"name": "synthesis.b4.const", "value": 1.0}]},
                   graph_dir=folder)["image"]
    assert torch.equal(got, want)

    bare = folder / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(bare))
    with pytest.raises(NodeError, match=r"holds tensors only.*flowml.init_kwargs.*bare.json"):
        run_node(StyleGANGenerator, {"w": w}, {"path": bare.name}, graph_dir=folder)
    (folder / "bare.json").write_text(json.dumps({"init_kwargs": G.init_kwargs}))
    got = run_node(StyleGANGenerator, {"w": w}, {"path": bare.name}, graph_dir=folder)["image"]
    assert torch.equal(got, want)
