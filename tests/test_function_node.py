"""function_node's inputs/outputs are mappings; a misspelt input is an error at import, with
file and line (issue 13, item 5)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import flowml
from flowml import IMAGE, SCALAR
from flowml.testing import run_node

MODULE = textwrap.dedent("""\
    import flowml
    from flowml import IMAGE


    @flowml.function_node("mine.blur", inputs={"imgae": IMAGE})
    def blur(image, *, radius: int = 3):
        return image
""")


def test_misspelt_input_fails_at_import_naming_file_and_line(tmp_path):
    (tmp_path / "mynodes.py").write_text(MODULE)
    r = subprocess.run([sys.executable, "-c", "import mynodes"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1
    assert (f"TypeError: {tmp_path / 'mynodes.py'}:5: @function_node('mine.blur'): inputs names "
            "'imgae', which is not a positional parameter of blur(); did you mean 'image'?") in r.stderr


@pytest.mark.parametrize(("kw", "says"), [
    ({"inputs": ("image", IMAGE)}, "inputs must be a mapping of port name to port type, e.g. inputs={'image': flowml.IMAGE}; got a tuple"),
    ({"outputs": ["image"]}, "outputs must be a mapping of port name to port type"),
    ({"outputs": {"image": "image"}}, "outputs['image'] must be a port type (flowml.IMAGE, TENSOR, SCALAR, ...), got 'image'"),
    ({"inputs": {"my-image": IMAGE}}, "port name 'my-image' must be a Python identifier"),
])
def test_port_mappings_are_checked_where_written(kw, says):
    with pytest.raises(TypeError) as caught:
        flowml.function_node("mine.x", **kw)
    assert says in str(caught.value)
    assert __file__ in str(caught.value)


def test_several_outputs_and_a_ranged_param():
    @flowml.function_node("mine.stats", inputs={"image": IMAGE},
                          outputs={"mean": SCALAR, "image": IMAGE})
    def stats(image, *, gain: float = 1.0):
        return {"mean": float(image.mean()) * gain, "image": image}

    out = run_node(stats, {"image": torch.ones(1, 3, 2, 2)}, {"gain": 2.0}, check=True)
    assert out["mean"] == 2.0 and out["image"].shape == (1, 3, 2, 2)
