import pytest
import torch

from flowml import ANY, IMAGE, TENSOR, NodeError
from flowml.testing import NodeHarness, run_node
from flowml_std.pyfunc import PythonFunction

EFFECTS = '''
import torch

def invert(image, amount=1.0):
    return image * (1 - amount) + (1 - image) * amount

def split(image, ctx):
    return image[:, :1], {"tick": ctx.tick.index, "node": ctx.node_id}
'''


@pytest.fixture
def effects_module(tmp_path, monkeypatch):
    (tmp_path / "my_effects.py").write_text(EFFECTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_effects"


@pytest.fixture
def graph_dir(tmp_path):
    (tmp_path / "fx.py").write_text(EFFECTS)
    return tmp_path


def test_module_function_with_args(effects_module):
    x = torch.full((1, 3, 2, 2), 0.25)
    out = run_node(PythonFunction, {"image": x}, {"function": "my_effects:invert", "args": {"amount": 0.5}})
    assert torch.allclose(out["image"], torch.full_like(x, 0.5))


def test_file_function_relative_to_graph_with_ctx_and_tuple_outputs(graph_dir):
    params = {"path": "fx.py", "function": "split", "outputs": ["mask:tensor", "info:json"]}
    with NodeHarness(PythonFunction, params, graph_dir=graph_dir, node_id="splitter") as h:
        h.process(image=torch.rand(1, 3, 2, 2))
        out = h.process(image=torch.rand(1, 3, 2, 2))
    assert out["mask"].shape == (1, 1, 2, 2)
    assert out["info"] == {"tick": 1, "node": "splitter"}


def test_ports_come_from_params():
    ports = PythonFunction.ports(PythonFunction.Params(
        function="m:f", inputs=["image", "boxes:detections", "x"], outputs=["image", "m:tensor"]))
    assert [(p.name, p.type) for p in ports.inputs] == [("image", IMAGE), ("boxes", ports.inputs[1].type), ("x", ANY)]
    assert ports.inputs[1].type.name == "detections"
    assert [(p.name, p.type) for p in ports.outputs] == [("image", IMAGE), ("m", TENSOR)]


@pytest.mark.parametrize("params, message", [
    ({"inputs": ["a", "a"]}, "unique"),
    ({"outputs": ["img:picture"]}, "unknown type 'picture'"),
    ({"inputs": ["class"]}, "identifier"),
    ({"args": {"image": 1}}, "clash"),
])
def test_bad_params_are_rejected(params, message):
    with pytest.raises(ValueError, match=message):
        PythonFunction.Params(function="m:f", **params)


def test_missing_file_module_and_function_are_named(graph_dir, effects_module):
    with pytest.raises(NodeError, match=r"Python file not found: .*nope\.py"):
        run_node(PythonFunction, {"image": 0}, {"path": "nope.py", "function": "f"}, graph_dir=graph_dir)
    with pytest.raises(NodeError, match=r"fx\.py has no function 'invrt'; did you mean invert"):
        run_node(PythonFunction, {"image": 0}, {"path": "fx.py", "function": "invrt"}, graph_dir=graph_dir)
    with pytest.raises(NodeError, match="cannot import module 'no_such_module'"):
        run_node(PythonFunction, {"image": 0}, {"function": "no_such_module:f"})
    with pytest.raises(NodeError, match="write 'module:function'"):
        run_node(PythonFunction, {"image": 0}, {"function": "invert"})


def test_errors_in_the_file_and_signature_are_caught_at_setup(tmp_path):
    (tmp_path / "broken.py").write_text("x = 1\ny = undefined_name\n")
    with pytest.raises(NodeError, match=r"broken\.py:2: NameError"):
        run_node(PythonFunction, {"image": 0}, {"path": "broken.py", "function": "f"}, graph_dir=tmp_path)
    (tmp_path / "sig.py").write_text("def f(frame):\n    return frame\n")
    with pytest.raises(NodeError, match=r"cannot be called with inputs \['image'\]"):
        run_node(PythonFunction, {"image": 0}, {"path": "sig.py", "function": "f"}, graph_dir=tmp_path)


def test_wrong_return_shape_and_reload(tmp_path):
    code = tmp_path / "ret.py"
    code.write_text("def f(image):\n    return 1\n")
    params = {"path": "ret.py", "function": "f", "outputs": ["a", "b"]}
    with pytest.raises(NodeError, match="return a dict with exactly those keys or a tuple of 2"):
        run_node(PythonFunction, {"image": 0}, params, graph_dir=tmp_path)
    code.write_text("def f(image):\n    return {'a': image, 'b': image + 1}\n")  # edited: loaded afresh
    assert run_node(PythonFunction, {"image": 1}, params, graph_dir=tmp_path) == {"a": 1, "b": 2}
