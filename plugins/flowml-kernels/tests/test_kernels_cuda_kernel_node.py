"""``cuda.kernel``: params, ports and compiler messages on the CPU; the kernels on a GPU."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import torch

import flowml
from flowml.testing import NodeHarness, run_node
from flowml_kernels import cupy_backend
from flowml_kernels.cudakernel import CudaKernel
from flowml_kernels.usercode import map_compiler_log

GRAPHS = Path(__file__).resolve().parents[3] / "graphs"

NVRTC_LOG = """\
/tmp/tmpa1b2/6f7e.cu(3): error: identifier "gian" is undefined
      out[i] = in[i] * gian;
                       ^

/tmp/tmpa1b2/6f7e.cu(7): warning #177-D: variable "k" was declared but never referenced

1 error detected in the compilation of "/tmp/tmpa1b2/6f7e.cu".
"""


def test_compiler_log_is_mapped_to_file_and_line():
    lines = map_compiler_log(NVRTC_LOG, "kernels/grade.cu")
    assert lines[0] == 'kernels/grade.cu:3: error: identifier "gian" is undefined'
    assert lines[1].strip() == "out[i] = in[i] * gian;"
    assert lines[3].startswith("kernels/grade.cu:7: warning:")
    assert not any("detected in the compilation" in line for line in lines)


@pytest.mark.parametrize("params,message", [
    ({}, "one of them"),
    ({"code": "x", "path": "k.cu"}, "one of them"),
    ({"code": "x", "args": ["gain"]}, "values has 0 numbers for 1 args"),
    ({"code": "x", "args": ["gain:double"], "values": [1]}, "name:float, name:int or name:bool"),
    ({"code": "x", "like": "mask"}, "like: 'mask' is not an input"),
    ({"code": "x", "inputs": []}, "at least one input"),
    ({"code": "x", "block": [64, 64]}, "1 to 1024 threads"),
    ({"code": "x", "shapes": {"hist": [1, 1, 1, 256]}}, r"shapes names \['hist'\], which are not"),
    ({"code": "x", "outputs": ["hist:tensor"], "shapes": {"hist": [1, 0, 1, 256]}}, "at least 1"),
])
def test_params_errors_say_what_to_write(params, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        CudaKernel.Params(**params)


def test_ports_come_from_params():
    p = CudaKernel.Params(code="x", inputs=["image", "mask:tensor"], outputs=["image", "glow:image"])
    ports = CudaKernel.ports(p)
    assert [(i.name, i.type.name) for i in ports.inputs] == [("image", "image"), ("mask", "tensor")]
    assert [(o.name, o.type.name) for o in ports.outputs] == [("image", "image"), ("glow", "image")]


def test_on_a_cpu_graph_setup_says_a_gpu_is_needed():
    with pytest.raises(flowml.NodeError, match="cuda.kernel needs a GPU|runs on a GPU graph"):
        run_node(CudaKernel, {"image": torch.rand(1, 3, 4, 4)}, params={"code": "x"})


def test_the_shipped_kernel_graphs_validate_without_a_gpu():
    from flowml.graph import load_graph
    from flowml.plugins import load_registry

    reg = load_registry()
    for name in ("kernel_grade", "kernel_trail"):
        graph = load_graph(GRAPHS / f"{name}.yaml", reg)
        assert any(rn.type.cls is CudaKernel for rn in graph.nodes.values())


# -- on a GPU with CuPy ----------------------------------------------------------------------

def _grade_ref(x, lift, gamma, gain, sat):
    v = (gain * (x + lift * (1 - x))).clamp(0, 1) ** (1 / gamma)
    luma = (torch.tensor([0.2126, 0.7152, 0.0722], device=x.device).view(1, 3, 1, 1) * v).sum(1, keepdim=True)
    return (luma + (v - luma) * sat).clamp(0, 1)


def _need_cupy():
    why = cupy_backend.unavailable()
    assert why is None, f"the CUDA tests need CuPy on this GPU machine: {why}"


@pytest.mark.cuda
def test_grade_kernel_matches_torch_and_takes_live_values():
    _need_cupy()
    x = torch.rand(2, 3, 70, 130, device="cuda")
    params = {"path": "kernels/grade.cu", "function": "grade",
              "args": ["lift", "gamma", "gain", "saturation"], "values": [0.05, 1.2, 1.1, 0.6]}
    with NodeHarness(CudaKernel, params, device="cuda", graph_dir=GRAPHS) as h:
        out = h.process(image=x)["image"]
        torch.testing.assert_close(out, _grade_ref(x, 0.05, 1.2, 1.1, 0.6), rtol=1e-4, atol=1e-5)
        h.set_params(values=[0.0, 1.0, 1.0, 1.0])           # identity, as an OSC change would
        torch.testing.assert_close(h.process(image=x)["image"], x, rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
def test_trail_kernel_keeps_its_state_between_frames():
    _need_cupy()
    params = {"path": "kernels/trail.cu", "function": "trail", "state": ["memory"],
              "args": ["decay"], "values": [0.5]}
    with NodeHarness(CudaKernel, params, device="cuda", graph_dir=GRAPHS) as h:
        white = torch.ones(1, 3, 8, 8, device="cuda")
        black = torch.zeros_like(white)
        assert torch.all(h.process(image=white)["image"] == 1)
        torch.testing.assert_close(h.process(image=black)["image"], white * 0.5)
        torch.testing.assert_close(h.process(image=black)["image"], white * 0.25)


@pytest.mark.cuda
def test_inline_kernel_with_an_int_arg_runs_on_a_side_stream():
    _need_cupy()
    code = r'''extern "C" __global__ void k(const float* a, float* o, int B, int C, int H, int W, int add)
    { int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
      if (x >= W || y >= H) return;
      for (int c = 0; c < C; ++c) { long long i = ((long long)(blockIdx.z * C + c) * H + y) * W + x;
                                    o[i] = a[i] + add; } }'''
    x = torch.rand(3, 4, 33, 47, device="cuda")  # an image: 1 to 4 channels
    side = torch.cuda.Stream()
    with NodeHarness(CudaKernel, {"code": code, "function": "k", "args": ["add:int"],
                                  "values": [2]}, device="cuda") as h:
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = h.process(image=x)["image"]
        torch.cuda.current_stream().wait_stream(side)
        torch.testing.assert_close(out, x + 2)


@pytest.mark.cuda
def test_a_compile_error_names_the_file_and_line(tmp_path):
    _need_cupy()
    (tmp_path / "bad.cu").write_text('extern "C" __global__ void k(const float* a, float* o,\n'
                                     '    int B, int C, int H, int W)\n{\n    o[0] = a[0] * gian;\n}\n')
    with pytest.raises(flowml.NodeError, match=r"bad\.cu:4: error: .*gian"):
        run_node(CudaKernel, {"image": torch.rand(1, 1, 2, 2, device="cuda")},
                 params={"path": "bad.cu", "function": "k"}, device="cuda", graph_dir=tmp_path)
    (tmp_path / "good.cu").write_text('extern "C" __global__ void k(const float* a, float* o,'
                                      ' int B, int C, int H, int W) {}\n')
    with pytest.raises(flowml.NodeError, match=r"extern \"C\" __global__ void nope"):
        run_node(CudaKernel, {"image": torch.rand(1, 1, 2, 2, device="cuda")},
                 params={"path": "good.cu", "function": "nope"}, device="cuda", graph_dir=tmp_path)


def test_validating_the_kernel_graphs_imports_neither_torch_nor_cupy():
    import subprocess
    import sys

    code = ("import sys; from flowml.graph import load_graph; from flowml.plugins import load_registry; "
            f"reg = load_registry(); [load_graph(p, reg) for p in {[str(GRAPHS / 'kernel_grade.yaml'), str(GRAPHS / 'kernel_trail.yaml')]!r}]; "
            "print(sorted(m for m in ('torch', 'cupy') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


@pytest.mark.cuda
def test_an_output_of_a_given_shape():
    _need_cupy()
    code = r'''extern "C" __global__ void hist(const float* a, float* h, int B, int C, int H, int W)
    { int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
      if (x >= W || y >= H) return;
      int bin = min(15, (int)(a[(long long)y * W + x] * 16.0f));
      atomicAdd(&h[bin], 1.0f); }'''
    x = torch.rand(1, 1, 50, 70, device="cuda")
    params = {"code": code, "function": "hist", "outputs": ["hist:tensor"],
              "shapes": {"hist": [1, 1, 1, 16]}}
    with NodeHarness(CudaKernel, params, device="cuda") as h:
        for _ in range(2):                     # zeroed every frame: counts do not pile up
            out = h.process(image=x)["hist"]
    assert out.shape == (1, 1, 1, 16)
    expected = torch.histc(x.clamp(max=15 / 16 + 1e-3), bins=16, min=0, max=1)
    assert out.sum().item() == 50 * 70
    torch.testing.assert_close(out.flatten(), expected, rtol=0, atol=1)  # ties at bin edges
