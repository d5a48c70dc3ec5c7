"""flowml outside a clone: the example graphs and model builders ship in the wheel, `flowml
examples` and `flowml demo` work from any folder, the distributions stay in step. (The whole
install from every wheel into a fresh venv is scripts/check-wheels.sh, a CI step of its own.)"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import av
import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOWML = [sys.executable, "-m", "flowml.cli"]
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit")


def flowml(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*FLOWML, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def check_dists():
    spec = importlib.util.spec_from_file_location("check_dists", ROOT / "scripts" / "check_dists.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def repo_graphs() -> set[str]:
    return {p.stem for p in (ROOT / "graphs").glob("*.yaml")}


def test_examples_lists_every_graph_of_the_repo(tmp_path):
    r = flowml("examples", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    listed = dict(line.split("\t", 1) for line in r.stdout.splitlines())
    assert set(listed) == repo_graphs()
    assert listed["demo"].startswith("flowml's first demo")


def test_examples_copy_rewrites_paths_builds_models_and_validates(tmp_path):
    dest = tmp_path / "mine"
    r = flowml("examples", "copy", "demo", "matting_demo", "kernel_grade", str(dest), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    demo = (dest / "demo.yaml").read_text()
    assert "../" not in demo and "path: models/toon.pt" in demo and "path: out/demo.mp4" in demo
    assert (dest / "models" / "toon.pt").stat().st_size > 1000           # built, TorchScript
    assert (dest / "models" / "difference_matte.pt").stat().st_size > 1000
    assert (dest / "kernels" / "grade.cu").read_text() == (ROOT / "graphs" / "kernels" / "grade.cu").read_text()
    v = flowml("validate", *(str(dest / f"{n}.yaml") for n in ("demo", "matting_demo", "kernel_grade")), cwd=tmp_path)
    assert v.returncode == 0, v.stdout + v.stderr
    assert v.stdout.count("ok: ") == 3


def test_examples_copy_of_an_unknown_name_says_the_near_one(tmp_path):
    r = flowml("examples", "copy", "dmeo", str(tmp_path / "x"), cwd=tmp_path)
    assert r.returncode == 2
    assert "no example graph 'dmeo' (did you mean 'demo'?)" in r.stderr
    assert not (tmp_path / "x").exists()


def test_demo_help_and_a_short_run_into_a_folder(tmp_path):
    h = flowml("demo", "--help", cwd=tmp_path)
    assert h.returncode == 0 and "--frames" in h.stdout and "user cache" in h.stdout
    r = flowml("demo", "here", "--frames", "4", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "here" / "out"
    assert f"wrote {out / 'demo.mp4'}" in r.stderr
    with av.open(str(out / "demo.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (360, 640, 3)
    assert (out / "demo.png").stat().st_size > 1000
    assert (tmp_path / "here" / "models" / "toon.pt").is_file()


def test_user_cache_dir_follows_flowml_cache_and_the_os(monkeypatch, tmp_path):
    from flowml.demo import user_cache_dir

    monkeypatch.setenv("FLOWML_CACHE", str(tmp_path / "c"))
    assert user_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("FLOWML_CACHE")
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert user_cache_dir() == tmp_path / "local" / "flowml" / "Cache"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert user_cache_dir() == Path.home() / "Library" / "Caches" / "flowml"


def test_the_core_wheel_holds_the_example_graphs_and_the_model_builders(tmp_path):
    """Built from a copy of the sources (the checkout is left alone), as pip builds it."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("flowml", "graphs"):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "-w", str(tmp_path / "dist"), str(src)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = (tmp_path / "dist").glob("flowml-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = [p for p in (ROOT / "graphs").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    want = {f"flowml/examples/{p.relative_to(ROOT / 'graphs').as_posix()}" for p in data}
    assert want <= names, sorted(want - names)
    assert {"flowml/examples/demo.yaml", "flowml/examples/kernels/grade.cu"} <= names
    for module in ("__init__", "toon", "matting", "bgmv2", "difference_matte"):
        assert f"flowml/models/{module}.py" in names
    assert "flowml/runtime/scheduler.py" in names  # a folder without __init__.py ships too
    assert not [n for n in names if n.startswith(("tests/", "plugins/", "models/"))]


def test_the_distributions_are_in_step():
    assert check_dists().problems() == []


def test_check_dists_names_a_version_out_of_step_and_a_plugin_in_no_extra(tmp_path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "plugins" / "flowml-std").mkdir(parents=True)
    shutil.copy(ROOT / "plugins" / "flowml-std" / "pyproject.toml", tmp_path / "plugins" / "flowml-std")
    new = tmp_path / "plugins" / "flowml-new"
    new.mkdir()
    (new / "pyproject.toml").write_text('[project]\nname = "flowml-new"\nversion = "9.9"\n')
    bad = check_dists().problems(tmp_path)
    assert any("plugins/flowml-new/pyproject.toml: version '9.9'" in b for b in bad), bad
    assert any("flowml-new is in no extra" in b for b in bad), bad
    assert any("flowml[all] does not install flowml-new" in b for b in bad), bad
    # extras naming plugins this copy lacks are named as such (they would break installs)
    assert any("names flowml-av, which is not in plugins/" in b for b in bad), bad


def test_every_model_an_example_graph_reads_is_built_by_flowml_or_its_plugin(tmp_path):
    """No example graph reads a model that `flowml examples copy` cannot make: flowml's own
    (flowml.models.BUILDERS) or a plugin's, through the register_model_builders hook."""
    from flowml import example_graphs as ex
    from flowml.models import builders
    from flowml.plugins import load_registry

    registry = load_registry()
    known = builders(registry)
    missing = {name: [m for m in ex.models_of(name) if m not in known] for name in ex.names()}
    assert {n: m for n, m in missing.items() if m} == {}
    assert registry.model_builders["squeezenet_tracks.pt"][0] == "track"   # the plugin that gives it
    from flowml_gan.build import default_name

    assert all(default_name(c, 256) in registry.model_builders for c in ("sg2", "sg3-t", "sg3-r"))
    r = flowml("examples", "copy", "analytics_tracking", str(tmp_path / "t"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    import torch

    model = torch.jit.load(str(tmp_path / "t" / "models" / "squeezenet_tracks.pt"))
    assert model(torch.rand(3, 3, 64, 64)).shape == (3, 2)       # the graph's 2 classes
    v = flowml("validate", str(tmp_path / "t" / "analytics_tracking.yaml"), cwd=tmp_path)
    assert v.returncode == 0, v.stdout + v.stderr


def test_a_bad_model_builder_registration_is_a_plugin_failure_not_a_crash():
    import types

    import flowml
    from flowml.plugins import load_registry

    module = types.ModuleType("bad_builders")

    @flowml.hookimpl
    def register_model_builders(register):
        register("models/nested.pt", lambda folder: [])   # a path, not a file name
        register("fine.pt", lambda folder: [folder / "fine.pt"])

    module.register_model_builders = register_model_builders
    registry = load_registry([("bad", module)])
    assert "fine.pt" in registry.model_builders
    assert any(f.plugin == "bad" and "models/nested.pt" in f.error for f in registry.failures)
