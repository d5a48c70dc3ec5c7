"""What ``flowml validate`` says of flowml-kernels' nodes without a GPU: notes (non-fatal) for
a machine without CuPy or a CUDA GPU, errors (file:line, node, param) for a ``cuda.kernel``
whose file is missing or lacks its function. CuPy is made absent here (``sys.modules["cupy"] =
None``), so these run the same on a GPU machine."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from flowml.graph import GraphErrors, load_graph
from flowml.plugins import load_registry
from flowml_kernels import checks

GRAPH = textwrap.dedent("""\
    flowml: 1
    clock: scene
    nodes:
      scene: {type: capture.pattern, params: {size: [32, 16], frames: 2}}
      k:
        type: cuda.kernel
        inputs: {image: scene/image}
        params:
          path: @PATH@
          function: @FUNCTION@
      w: {type: python.function, inputs: {image: scene/image},
          params: {path: w.py, function: f, outputs: ["weights:tensor"]}}
      kpn:
        type: kpn.weighted_filter
        inputs: {image: k/image, weights: w/weights}
        params: {kernel_size: 3, backend: @BACKEND@}
    """)

KERNEL = 'extern "C" __global__ void tint(const float* a, float* o, int B, int C, int H, int W) {}\n'


@pytest.fixture
def no_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    checks.cuda_problem.cache_clear()
    yield
    checks.cuda_problem.cache_clear()


def _graph(tmp_path, path="tint.cu", function="tint", backend="auto"):
    (tmp_path / "tint.cu").write_text(KERNEL)
    (tmp_path / "w.py").write_text("def f(image):\n    return image[:, :1].repeat(1, 9, 1, 1)\n")
    g = tmp_path / "g.yaml"
    g.write_text(GRAPH.replace("@PATH@", path).replace("@FUNCTION@", function)
                 .replace("@BACKEND@", backend))
    return g


def test_without_cupy_validation_notes_both_nodes_and_succeeds(tmp_path, no_cupy):
    graph = load_graph(_graph(tmp_path), load_registry())
    notes = [str(n) for n in graph.notes]
    assert len(notes) == 2, notes
    assert notes[0].startswith(f"{tmp_path / 'g.yaml'}:6:11: note: node 'k' (cuda.kernel): needs "
                               "a CUDA GPU and CuPy, which this machine lacks (CuPy is not installed")
    assert notes[0].endswith("the graph will not start here")
    assert ":14:11: note: node 'kpn' (kpn.weighted_filter): the CuPy kernels cannot run here" in notes[1]
    assert "backend auto runs the unfold reference" in notes[1]
    graph = load_graph(_graph(tmp_path, backend="torch"), load_registry())
    assert [n.message.split(":")[0] for n in graph.notes] == ["node 'k' (cuda.kernel)"]  # torch: no note


def test_flowml_validate_prints_the_notes_and_exits_0(tmp_path):
    code = ("import sys; sys.modules['cupy'] = None; from flowml.cli import entry; "
            f"sys.argv = ['flowml', 'validate', {str(_graph(tmp_path))!r}]; entry()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok: " in r.stdout
    assert "g.yaml:6:11: note: node 'k' (cuda.kernel): needs a CUDA GPU and CuPy" in r.stderr
    assert "g.yaml:14:11: note: node 'kpn' (kpn.weighted_filter)" in r.stderr


def _errors(graph) -> list[str]:
    with pytest.raises(GraphErrors) as caught:
        load_graph(graph, load_registry())
    return [str(e) for e in caught.value.errors]


def test_a_missing_kernel_file_fails_validation_naming_line_node_and_param(tmp_path):
    [error] = _errors(_graph(tmp_path, path="kernels/nope.cu"))
    assert error.startswith(f"{tmp_path / 'g.yaml'}:8:5: error: node 'k': param 'path': no kernel "
                            f"file 'kernels/nope.cu' (looked for {tmp_path / 'kernels' / 'nope.cu'})")


def test_a_kernel_file_without_the_function_fails_validation(tmp_path):
    [error] = _errors(_graph(tmp_path, function="tnit"))
    assert ":8:5: error: node 'k': param 'function': tint.cu has no __global__ function 'tnit'; " \
           "it declares 'tint'" in error
    (tmp_path / "cpp.cu").write_text(KERNEL.replace('extern "C" ', ""))
    [error] = _errors(_graph(tmp_path, path="cpp.cu"))
    assert "param 'function': cpp.cu: 'tint' is not extern \"C\"" in error


@pytest.mark.parametrize("source, names", [
    (KERNEL, ["tint"]),
    ('extern "C" {\n// __global__ void old(\n__global__ void __launch_bounds__(256) a(float* x)\n{}\n'
     'template <int N> __global__ void b(float* x) {}\n}\n', ["a", "b"]),
    ('/* __global__ void c( */ __device__ float d(float x) { return x; }\n', []),
])
def test_global_functions_skip_comments_and_launch_bounds(source, names):
    assert checks.global_functions(source) == names


def test_function_problem_is_lenient_only_where_it_cannot_tell():
    macro = '#define KERNEL(f) extern "C" __global__ void f\nKERNEL(grade)(float* o) {}\n'
    assert checks.function_problem(macro, "grade", "m.cu") is None    # NVRTC decides at setup
    device_only = '__device__ float gain(float x) { return x; }\n'
    assert checks.function_problem(device_only, "grade", "d.cu") == (
        'd.cu has no function \'grade\': write extern "C" __global__ void grade(...)')
