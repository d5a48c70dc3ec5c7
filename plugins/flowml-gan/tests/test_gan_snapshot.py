"""Snapshots are read by a restricted unpickler that executes nothing."""

import os
import pickle
from pathlib import Path

import pytest
import torch

from flowml_gan.official import PersistentObject, dumps_official, to_records
from flowml_gan.snapshot import SnapshotError, load_generator, read_pickle, save_pt
from flowml_gan.stylegan2 import Generator

FIXTURES = Path(__file__).parent / "fixtures"


def tiny(seed=0):
    torch.manual_seed(seed)
    return Generator(8, 0, 8, 16, 3, mapping_kwargs={"num_layers": 2},
                     synthesis_kwargs={"channel_base": 64, "channel_max": 8}).eval()


class SystemCall:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_pickle_calling_os_system_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": SystemCall(f"touch {marker}")}))
    assert b"system" in path.read_bytes()
    with pytest.raises(SnapshotError, match=r"refused: the pickle asks for (posix|os|nt)\.system"):
        load_generator(path)
    assert not marker.exists()


def exec_payload(marker):
    return f"open({str(marker)!r}, 'w').write('ran')\nclass Generator:\n    pass\n"


def test_embedded_source_that_writes_a_file_is_never_executed(tmp_path):
    """NVIDIA's loader exec()s the module source carried in the pickle; ours keeps it as text.
    A snapshot of an unknown class is refused, one of a known class is read as data only."""
    marker = tmp_path / "ran"
    evil = to_records(tiny(), module_src=exec_payload(marker), class_name="Backdoor")
    data = dumps_official({"G_ema": evil})
    assert b"write('ran')" in data
    (tmp_path / "a.pkl").write_bytes(data)
    with pytest.raises(SnapshotError, match=r"class 'Backdoor'.*its embedded code was not run"):
        load_generator(tmp_path / "a.pkl")
    assert not marker.exists()

    G = tiny()
    (tmp_path / "b.pkl").write_bytes(dumps_official({"G_ema": to_records(G, module_src=exec_payload(marker))}))
    loaded = load_generator(tmp_path / "b.pkl")  # the tensors and kwargs, not the code
    assert not marker.exists()
    z = torch.randn(2, 8)
    assert torch.equal(loaded(z), G(z))


def test_state_without_init_kwargs_or_a_foreign_submodule_is_refused(tmp_path):
    rec = to_records(tiny())
    del rec.meta["state"]["_init_kwargs"]
    (tmp_path / "a.pkl").write_bytes(dumps_official({"G_ema": rec}))
    with pytest.raises(SnapshotError, match="no constructor keywords"):
        load_generator(tmp_path / "a.pkl")
    (tmp_path / "b.pkl").write_bytes(dumps_official({"G_ema": PersistentObject({"type": "class"})}))
    with pytest.raises(SnapshotError, match="class None"):
        load_generator(tmp_path / "b.pkl")


def test_other_globals_and_shapes_of_file_are_refused_with_clear_errors(tmp_path):
    with pytest.raises(SnapshotError, match=r"builtins\.eval"):
        read_pickle(pickle.dumps(eval))
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(SnapshotError, match="holds a list, not a dict with G_ema"):
        load_generator(tmp_path / "list.pkl")
    (tmp_path / "d.pkl").write_bytes(pickle.dumps({"D": 1}))
    with pytest.raises(SnapshotError, match=r"no network 'G_ema'; it has \['D'\]"):
        load_generator(tmp_path / "d.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"\x80\x04junk")
    with pytest.raises(SnapshotError, match="not a readable pickle"):
        load_generator(tmp_path / "junk.pkl")
    with pytest.raises(SnapshotError, match="snapshot not found.*build_stylegan"):
        load_generator(tmp_path / "none.pkl")


def test_a_network_whose_tensors_do_not_fit_is_refused(tmp_path):
    rec = to_records(tiny())
    rec.meta["state"]["_init_kwargs"]["w_dim"] = 16
    (tmp_path / "bad.pkl").write_bytes(dumps_official({"G_ema": rec}))
    with pytest.raises(SnapshotError, match=r"bad.pkl: the tensors do not fit a stylegan2 generator"):
        load_generator(tmp_path / "bad.pkl")


def test_our_official_layout_pickle_and_pt_round_trip(tmp_path):
    G, G2 = tiny(0), tiny(1)
    (tmp_path / "s.pkl").write_bytes(dumps_official({"G": G2, "G_ema": G, "augment_pipe": None}))
    z = torch.randn(1, 8)
    with torch.no_grad():
        assert torch.equal(load_generator(tmp_path / "s.pkl")(z), G(z))
        assert torch.equal(load_generator(tmp_path / "s.pkl", key="G")(z), G2(z))
        save_pt(G, tmp_path / "s.pt")
        assert torch.equal(load_generator(tmp_path / "s.pt")(z), G(z))
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(SnapshotError, match=r"a bare state dict; .* needed beside it, as other.json"):
        load_generator(tmp_path / "other.pt")
    torch.save({"format": "someone/else", "state_dict": {}}, tmp_path / "fmt.pt")
    with pytest.raises(SnapshotError, match="format 'someone/else'"):
        load_generator(tmp_path / "fmt.pt")


def test_nvidias_pickle_names_only_allowed_globals():
    """The fixture made with NVIDIA's code (fixtures/make_nvidia_fixtures.py) reads as records:
    its embedded source is there as text."""
    snap = read_pickle((FIXTURES / "sg2_64.pkl").read_bytes())
    assert sorted(snap) == ["G", "G_ema", "augment_pipe", "training_set_kwargs"]
    assert snap["G_ema"].class_name == "Generator"
    assert "class SynthesisNetwork" in snap["G_ema"].module_src


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_pickle_protocol_a_snapshot_may_use(tmp_path, protocol):
    """Protocol 2 names builtins as __builtin__ and writes bytes as _codecs.encode(text,
    'latin1'): both allowed in exactly that form. (NVIDIA's fixture re-pickled at protocols 2
    and 3 with their code also gives their image; checked when this was written.)"""
    G = tiny()
    data = dumps_official({"G_ema": G}, protocol=protocol)
    if protocol == 2:
        assert b"_codecs" in data and b"__builtin__" in data
    (tmp_path / "s.pkl").write_bytes(data)
    z = torch.randn(1, 8)
    with torch.no_grad():
        assert torch.equal(load_generator(tmp_path / "s.pkl")(z), G(z))
    with pytest.raises(SnapshotError, match="_codecs.encode other than latin1"):
        read_pickle(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00utf-8\x86R.")
