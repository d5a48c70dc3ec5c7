"""Output contracts checked at the producer (flowml.contracts), through flowml.testing as a
plugin author meets them, and through `flowml run --check` for an input changed in place."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from flowml import IMAGE, JSON, MATRIX, SCALAR, Input, Node, Output
from flowml.contracts import ContractError, checking
from flowml.node import NodeError
from flowml.testing import run_node


def node(outputs, result, inputs=(Input("image", IMAGE),), mutate=False):
    """A node type with these outputs whose process returns ``result`` (a function of the input)."""

    class Made(Node):
        type_name = "test.made"

    Made.inputs, Made.outputs = tuple(inputs), tuple(outputs)

    def process(self, image):
        if mutate:
            image.mul_(0)
        return result(image)

    Made.process = process
    return Made


IMG = Output("image", IMAGE)


def error(node_type, check=False, image=None) -> ContractError:
    with pytest.raises(ContractError) as caught:
        run_node(node_type, {"image": torch.rand(1, 3, 6, 6) if image is None else image}, check=check)
    assert isinstance(caught.value, NodeError)  # shown without a traceback
    return caught.value


def test_unknown_output_name_suggests_the_nearest():
    e = error(node([IMG], lambda x: {"imag": x}))
    assert e.port == "imag"
    assert str(e) == "process() returned output 'imag', which test.made does not have; did you mean 'image'?"


def test_unknown_output_name_among_several():
    e = error(node([IMG, Output("mask", IMAGE)], lambda x: {"image": x, "msk": x}))
    assert "returned output 'msk'" in str(e) and "did you mean 'mask'?" in str(e)


def test_numpy_array_for_an_image_names_the_port_and_the_fix():
    e = error(node([IMG], lambda x: x[0].permute(1, 2, 0).numpy()))
    assert e.port == "image"
    assert str(e).startswith("output 'image' (image) of test.made: expected a torch.Tensor, got numpy.ndarray")
    assert "host=True" in str(e)


@pytest.mark.parametrize(("make", "says"), [
    (lambda x: x[0], "expected (B, C, H, W), got shape (3, 6, 6) (add the batch axis: image[None])"),
    (lambda x: x.permute(0, 2, 3, 1), "expected 1 to 4 channels (RGB(A)) at dim 1, got shape (1, 6, 6, 3) (channels last?"),
    (lambda x: (x * 255).to(torch.uint8), "got dtype torch.uint8 (divide by 255"),
])
def test_image_convention(make, says):
    assert says in str(error(node([IMG], make)))


def test_scalar_matrix_and_json_kinds():
    assert "expected a number" in str(error(node([Output("v", SCALAR)], lambda x: "3")))
    assert "expected shape (3, 3) or (B, 3, 3)" in str(error(node([Output("m", MATRIX)], lambda x: x)))
    ok = run_node(node([Output("v", SCALAR), Output("m", MATRIX)],
                       lambda x: {"v": float(x.mean()), "m": torch.eye(3)}), {"image": torch.rand(1, 3, 2, 2)})
    assert set(ok) == {"v", "m"}
    bad_json = node([Output("j", JSON)], lambda x: {"j": {1, 2}})
    run_node(bad_json, {"image": torch.rand(1, 3, 2, 2)})  # cheap mode: not serialised
    assert "not JSON-able" in str(error(bad_json, check=True))


def test_none_means_no_value_except_for_an_image():
    out = run_node(node([Output("v", SCALAR), Output("m", MATRIX)], lambda x: {"v": None, "m": None}),
                   {"image": torch.rand(1, 3, 2, 2)})
    assert out == {"v": None, "m": None}
    assert "expected a torch.Tensor, got NoneType" in str(error(node([IMG], lambda x: None)))


def test_range_is_checked_only_in_check_mode():
    bright = node([IMG], lambda x: x + 2)
    assert run_node(bright, {"image": torch.rand(1, 3, 2, 2)})["image"].min() >= 2
    e = error(bright, check=True)
    assert "values must be in [0, 1]" in str(e) and "clamp" in str(e)
    assert "values must be in [0, 1]" in str(error(node([IMG], lambda x: x * float("nan")), check=True))
    assert not checking()  # check=True lasted one call


def test_in_place_change_of_an_input_is_caught_in_check_mode():
    mutating = node([IMG], lambda x: x, mutate=True)
    image = torch.rand(1, 3, 2, 2)
    run_node(mutating, {"image": image})  # not checked by default (it costs a little)
    e = error(mutating, check=True)
    assert e.port == "image"
    assert "test.made changed its input 'image' in place" in str(e) and "image * 0" in str(e)


def test_an_inference_tensor_input_is_checked_and_a_change_to_it_refused():
    with torch.inference_mode():  # as torch.model and stylegan.* make their outputs
        image = torch.rand(1, 3, 2, 2)
    out = run_node(node([IMG], lambda x: (x * 0.5).clamp(0, 1)), {"image": image}, check=True)
    assert torch.equal(out["image"], (image * 0.5).clamp(0, 1))
    with pytest.raises(Exception, match="[Ii]nference tensor"):  # torch refuses the change itself
        run_node(node([IMG], lambda x: x, mutate=True), {"image": image}, check=True)


def test_a_good_node_passes_every_check():
    out = run_node(node([IMG], lambda x: (x * 0.5).clamp(0, 1)), {"image": torch.rand(1, 3, 4, 4)}, check=True)
    assert out["image"].shape == (1, 3, 4, 4)


MUTATE = '''\
def darken(image):
    image.mul_(0)      # changes the frame every other consumer of scene/image reads
    return image
'''


def test_flowml_run_check_names_the_node_that_changed_a_shared_input(tmp_path: Path):
    (tmp_path / "fx.py").write_text(MUTATE)
    (tmp_path / "g.yaml").write_text(textwrap.dedent("""\
        flowml: 1
        nodes:
          scene: {type: capture.pattern, params: {size: [32, 16], frames: 3}}
          dark: {type: python.function, inputs: {image: scene/image}, params: {path: fx.py, function: darken}}
          still: {type: output.image, inputs: {image: scene/image}, params: {path: out.png}}
          still2: {type: output.image, inputs: {image: dark/image}, params: {path: out2.png}}
    """))
    r = subprocess.run([sys.executable, "-m", "flowml.cli", "run", "g.yaml", "--check"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "node 'dark' (python.function) failed on frame 0" in r.stderr
    assert "changed its input 'image' in place" in r.stderr
    assert "Traceback" not in r.stderr
    plain = subprocess.run([sys.executable, "-m", "flowml.cli", "run", "g.yaml"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr  # without --check it is not looked for
