"""torch.model taps (forward hooks on a torch.export program, unflattened) and live weight
edits, on a small convolutional network exported once per module (torch.export: ~3 s)."""

import pytest
import torch
from torch import nn

from flowml import NodeError
from flowml.testing import NodeHarness, run_node
from flowml_torch.edits import WeightEdits
from flowml_torch.model import TorchModel
from flowml_torch.taps import Taps, hookable

pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")]
TAPS = ["body.0", "body.1", "f=body.2", "head"]


class Net(nn.Module):
    """(B, 3, H, W) -> (B, 3, H, W): conv, batch norm, ReLU, 1x1 head."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        return torch.sigmoid(self.head(self.body(x)))


def image(seed=0):
    return torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """net.pt2 (torch.export), net.pt (TorchScript) and the module they were made from."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():  # running stats that are not the identity
        net.body[1].running_mean.uniform_(-0.2, 0.2)
        net.body[1].running_var.uniform_(0.5, 1.5)
    torch.export.save(torch.export.export(net, (image(),)), folder / "net.pt2")
    torch.jit.save(torch.jit.script(net), folder / "net.pt")
    return folder, net


def hooked(net, x):
    taps = Taps(net, TAPS)
    with torch.no_grad():
        net(x)
    taps.remove()
    return dict(taps.values)


def test_taps_on_an_export_program_have_the_modules_names_and_shapes(models):
    folder, net = models
    x = image(1)
    want = hooked(net, x)  # forward hooks on the nn.Module itself
    assert {k: tuple(v.shape) for k, v in want.items()} == {
        "body_0": (1, 8, 12, 16), "body_1": (1, 8, 12, 16), "f": (1, 8, 12, 16), "head": (1, 3, 12, 16)}
    ports = [o.name for o in TorchModel.ports(TorchModel.Params(path="net.pt2", taps=TAPS)).outputs]
    assert ports == ["image", "body_0", "body_1", "f", "head"]
    out = run_node(TorchModel, {"image": x}, {"path": "net.pt2", "taps": TAPS}, graph_dir=folder)
    assert set(out) == {"image", *want}
    for port, value in want.items():
        assert out[port].shape == value.shape and torch.allclose(out[port], value, atol=1e-6), port
    program = torch.export.load(str(folder / "net.pt2"))
    names = {n for n, _ in hookable(program).named_modules() if n}
    assert names == {n for n, _ in net.named_modules() if n}  # every layer of the module
    with pytest.raises(NodeError, match=r"net.pt2: tap 'body.3': no such layer; closest: \['body.2'"):
        run_node(TorchModel, {"image": x}, {"path": "net.pt2", "taps": ["body.3"]}, graph_dir=folder)
    with pytest.raises(ValueError, match="used twice"):
        TorchModel.Params(path="net.pt2", taps=["image=head"])


def test_a_torchscript_model_cannot_be_tapped_and_says_what_to_use(models):
    folder, _ = models
    with pytest.raises(NodeError, match=r"TorchScript.*no Python forward hooks.*torch\.export.*\.pt2"):
        run_node(TorchModel, {"image": image()}, {"path": "net.pt", "taps": ["head"]}, graph_dir=folder)
    with pytest.raises(ValueError, match="TorchScript"):
        hookable(torch.jit.load(str(folder / "net.pt")))


@pytest.mark.parametrize("name", ["net.pt2", "net.pt"])
def test_edits_never_compound_write_in_place_and_restore_bit_exactly(models, name):
    folder, _ = models
    x = image(2)
    weight = "head.weight"
    with NodeHarness(TorchModel, {"path": name}, graph_dir=folder) as h:
        tensor = dict(h.node.model.named_parameters())[weight]
        original, ptr = tensor.detach().clone(), tensor.data_ptr()
        plain = h.process(image=x)["image"]
        for i in range(100):  # the same edit, set again and again (a new params object each time)
            h.set_params(edits=[{"name": weight, "op": "scale", "value": 2.0}])
            h.set_params(edits=[{"name": weight, "op": "scale", "value": 2.0, "seed": i % 2}])
        assert torch.equal(tensor, original * 2.0) and tensor.data_ptr() == ptr
        once = run_node(TorchModel, {"image": x}, {"path": name, "edits": [
            {"name": weight, "op": "scale", "value": 2.0}]}, graph_dir=folder)["image"]
        assert torch.equal(h.process(image=x)["image"], once) and not torch.equal(once, plain)
        h.set_params(edits=[{"name": weight, "op": "add", "value": 0.5},
                            {"name": "body.1.running_var", "op": "set", "value": 4.0},
                            {"name": "body.0.bias", "op": "noise", "value": 0.3}])
        assert torch.equal(tensor, original + 0.5)
        h.set_params(edits=[])
        assert torch.equal(tensor, original) and tensor.data_ptr() == ptr
        assert torch.equal(h.process(image=x)["image"], plain)  # removed: bit-exact
        assert h.node.edits.originals == {}
        with pytest.raises(NodeError, match=r"'head.wieght': no such weight; closest: \['head.weight'"):
            h.set_params(edits=[{"name": "head.wieght", "op": "scale", "value": 0.0}])
        assert torch.equal(tensor, original)


def test_a_removed_edit_restores_the_first_original_after_casts():
    """The model cast to fp16 and back while an edit is in force (rebind after each): taking
    the edit out gives the fp32 weight as it was, not its fp16 rounding (the kept copy is made
    from the first one, never cast twice)."""
    net = Net()
    original = net.head.weight.detach().clone()
    edits = WeightEdits(net)
    edits.set([{"name": "head.weight", "op": "scale", "value": 1.5}])
    net.half()
    edits.rebind(net)
    assert torch.equal(net.head.weight, original.half() * 1.5)
    net.float()
    edits.rebind(net)
    assert torch.equal(net.head.weight, original * 1.5)  # written from the fp32 original
    edits.set([])
    assert torch.equal(net.head.weight, original)  # bit-exact, all 23 mantissa bits
    assert edits.originals == {} and edits.pristine == {}


def test_noise_is_seeded_and_fixed_and_counters_are_refused():
    a, b = Net(), Net()
    b.load_state_dict(a.state_dict())
    ea, eb = WeightEdits(a), WeightEdits(b)
    ea.set([{"name": "head.weight", "op": "noise", "value": 1.0}])
    eb.set([{"name": "head.weight", "op": "noise", "value": 1.0}])
    assert torch.equal(a.head.weight, b.head.weight)  # the same seed: the same noise
    eb.set([{"name": "head.weight", "op": "noise", "value": 1.0, "seed": 1}])
    assert not torch.equal(a.head.weight, b.head.weight)
    with pytest.raises(ValueError, match="num_batches_tracked.*not a weight"):
        ea.set([{"name": "body.1.num_batches_tracked", "op": "set", "value": 1}])


def test_weights_from_a_safetensors_state_dict(models, tmp_path):
    from safetensors.torch import save_file

    folder, net = models
    other = Net().eval()
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(folder / "other.safetensors"))
    x = image(3)
    out = run_node(TorchModel, {"image": x}, {"path": "net.pt2", "weights": "other.safetensors"},
                   graph_dir=folder)["image"]
    with torch.no_grad():
        assert torch.allclose(out, other(x), atol=1e-6) and not torch.allclose(out, net(x), atol=1e-3)
    save_file({"head.weight": other.head.weight.detach().contiguous()}, str(folder / "part.safetensors"))
    with pytest.raises(NodeError, match=r"do not fit model net.pt2: missing \['body.0.bias'"):
        run_node(TorchModel, {"image": x}, {"path": "net.pt2", "weights": "part.safetensors"}, graph_dir=folder)
    with pytest.raises(NodeError, match=r"weights only.*`weights: other.safetensors`"):
        run_node(TorchModel, {"image": x}, {"path": "other.safetensors"}, graph_dir=folder)


def test_edit_checks_as_a_dict_keep_edit_spec_s_fields_and_defaults():
    """``check_edits`` (a TypedDict, one pass) must stay ``EditSpec``: the same fields, in its
    order, its defaults filled in, its refusals."""
    from pydantic import ValidationError

    from flowml_torch.specs import EditSpec, _EditDict, check_edits

    assert list(_EditDict.__annotations__) == list(EditSpec.model_fields)
    edits = [{"name": "a.weight"}, {"name": "b.bias", "op": "noise", "value": 0.1, "seed": 3}]
    assert check_edits(edits) == [EditSpec(**e).model_dump() for e in edits]
    assert [list(e) for e in check_edits(edits)] == [list(EditSpec.model_fields)] * 2
    for bad in ({"name": "a", "op": "twist"}, {"name": "a", "colour": 1}, {"op": "scale"}):
        with pytest.raises(ValidationError):
            check_edits([bad])
        with pytest.raises(ValidationError):
            EditSpec(**bad)


@pytest.mark.parametrize("edit", [
    {"name": "a.weight", "op": "add", "value": 1, "seed": 0},              # an int value
    {"name": "a.weight", "op": "add", "value": 0.5, "seed": True},         # a bool seed
    {"seed": 0, "name": "a.weight", "op": "add", "value": 0.5},            # keys in another order
    {"name": "a.weight", "op": "twist", "value": 0.5, "seed": 0},          # an unknown op
    {"name": "a.weight", "op": ["add"], "value": 0.5, "seed": 0},          # an unhashable op
    {"name": "a.weight", "op": "add", "value": "0.5", "seed": 0},          # a string value
    {"name": 3, "op": "add", "value": 0.5, "seed": 0},
])
def test_edit_checks_take_only_finished_edits_as_they_are(edit):
    """The live path's shortcut (edits already in ``check_edits``' form are not validated
    again) must give what ``EditSpec`` gives, or refuse what it refuses."""
    from pydantic import ValidationError

    from flowml_torch.specs import _KEYS, EditSpec, check_edits

    assert _KEYS == tuple(EditSpec.model_fields)  # the shortcut checks each of them
    done = {"name": "b.bias", "op": "scale", "value": 2.0, "seed": 1}
    assert check_edits([done]) == [done] and check_edits([done])[0] is not done
    try:
        expected = [EditSpec(**done).model_dump(), EditSpec(**edit).model_dump()]
    except ValidationError:
        with pytest.raises(ValidationError):
            check_edits([done, edit])
    else:
        got = check_edits([done, edit])
        assert got == expected and [type(e["value"]) for e in got] == [float, float]
        assert [list(e) for e in got] == [list(EditSpec.model_fields)] * 2
