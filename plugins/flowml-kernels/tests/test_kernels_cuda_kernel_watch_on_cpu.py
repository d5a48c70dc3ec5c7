"""``--watch`` and a ``cuda.kernel``'s ``.cu`` file, on the CPU: a save that fails to compile
leaves the old kernel running and says the compiler's message as ``file:line``; the next good
save runs.

No GPU here, so NVRTC and the CUDA launch cannot run: ``HostCudaKernel`` is ``cuda.kernel``
with only those two steps (``_compile``, ``_launch``) replaced by the user's CUDA C built as
C++ with g++ (``#line`` keeps the ``.cu`` file's line numbers) and run over the grid, thread
by thread, as ``test_kernels_cuda_source_on_cpu.py`` runs the WeightedFilter kernels.
Everything else is the real thing: the node's setup (reading ``path``, the compile error as a
``NodeError``), its validation, its process, and flowml's ``--watch`` (``ControlSession``)
rebuilding the node when the file changes. What this cannot show: NVRTC's own log mapped by
``usercode.map_compiler_log`` (its unit test is in ``test_kernels_cuda_kernel_node.py``)."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import threading
import time

import pytest
import torch

from flowml import IMAGE, Input, Node
from flowml.control import ControlSession, ControlSettings
from flowml.gpu.cuda_c import host_library
from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler
from flowml_kernels.cudakernel import CudaKernel
from flowml_kernels.usercode import KernelCompileError

PRELUDE = r"""
#include <math.h>
#define __global__
#define __device__
#define __forceinline__ inline
struct dim3_ { unsigned x, y, z; };
static dim3_ blockIdx, blockDim, threadIdx, gridDim;
"""

_GXX = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):\d+: (?P<kind>error|warning): (?P<msg>.*)$")


class HostCudaKernel(CudaKernel):
    """``cuda.kernel`` compiling its CUDA C with g++ and running it on the CPU (tests only)."""

    type_name = "test.cuda_kernel_on_cpu"
    FOLDER = None  # where host_library keeps the built libraries (the test's tmp_path)

    def _check_device(self, ctx) -> None:
        pass  # the CPU is the device here

    def _compile(self, source: str, display: str, ctx):
        p = self.params
        args = [f"(const float*)t[{i}]" for i in range(len(p.inputs))]
        args += [f"(float*)t[{len(args) + i}]" for i in range(len(p.outputs) + len(p.state))]
        args += [f"(int)s[{i}]" for i in range(4)]
        args += [f"({(spec.partition(':')[2] or 'float')})s[{4 + i}]" for i, spec in enumerate(p.args)]
        driver = (f'extern "C" void flowml_run(void** t, const double* s, unsigned gx, unsigned gy,'
                  f' unsigned gz, unsigned bx, unsigned by) {{\n'
                  f'  gridDim = {{gx, gy, gz}}; blockDim = {{bx, by, 1}};\n'
                  f'  for (unsigned z = 0; z < gz; ++z) for (unsigned y = 0; y < gy; ++y)\n'
                  f'  for (unsigned x = 0; x < gx; ++x) for (unsigned v = 0; v < by; ++v)\n'
                  f'  for (unsigned u = 0; u < bx; ++u) {{\n'
                  f'    blockIdx = {{x, y, z}}; threadIdx = {{u, v, 0}};\n'
                  f'    {p.function}({", ".join(args)});\n  }}\n}}\n')
        code = f'{PRELUDE}#line 1 "{display}"\n{source}\n#line 1 "<driver>"\n{driver}'
        try:
            return host_library(code, self.FOLDER).flowml_run
        except subprocess.CalledProcessError as e:
            log = e.stderr.decode(errors="replace")
            found = [_GXX.match(line) for line in log.splitlines()]
            raise KernelCompileError([f"{m['file']}:{m['line']}: {m['kind']}: {m['msg']}"
                                      for m in found if m and m["file"] == display], log) from None

    def _launch(self, grid, block, tensors, scalars) -> None:
        ptrs = (ctypes.c_void_p * len(tensors))(*[t.data_ptr() for t in tensors])
        values = (ctypes.c_double * len(scalars))(*[float(s) for s in scalars])
        self._fn(ptrs, values, *[ctypes.c_uint(int(n)) for n in (*grid, block[0], block[1])])


KEPT: list[tuple[torch.Tensor, torch.Tensor]] = []


class Keep(Node):
    """Keeps (the kernel's output, its input) of every frame (tests only)."""

    type_name = "test.keep"
    inputs = (Input("image", IMAGE), Input("src", IMAGE))

    def process(self, image, src):
        KEPT.append((image.clone(), src.clone()))


GRAPH = """\
flowml: 1
clock: {fps: 40}
nodes:
  src: {type: capture.pattern, params: {pattern: scene, size: [12, 8]}}
  k:
    type: test.cuda_kernel_on_cpu
    inputs: {image: src/image}
    params: {path: kernels/gain.cu, function: gain, args: [k], values: [0.5], block: [4, 4]}
  keep: {type: test.keep, inputs: {image: k/image, src: src/image}}
"""

KERNEL = """\
extern "C" __global__ void gain(const float* image, float* out, int B, int C, int H, int W, float k)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= W || y >= H) return;
    for (int c = 0; c < C; ++c) {
        const long long i = ((long long)(blockIdx.z * C + c) * H + y) * W + x;
        out[i] = BODY;
    }
}
"""


def _save(path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp~")   # as editors save: a whole file renamed over
    tmp.write_text(text)
    os.replace(tmp, path)


def _wait(cond, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {cond.__doc__ or cond}")
        time.sleep(0.02)


def _latest_is(fn) -> bool:
    out, src = KEPT[-1]
    return torch.allclose(out, fn(src), atol=1e-6)


@pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v g++ || command -v c++"],
                                   capture_output=True).returncode != 0, reason="needs g++")
def test_a_kernel_save_that_fails_to_compile_keeps_the_old_kernel_running(tmp_path, monkeypatch):
    monkeypatch.setattr(HostCudaKernel, "FOLDER", tmp_path / "built")
    KEPT.clear()
    registry = load_registry()
    registry.add(HostCudaKernel, "kernels-tests")
    registry.add(Keep, "kernels-tests")
    (tmp_path / "kernels").mkdir()
    cu = tmp_path / "kernels" / "gain.cu"
    cu.write_text(KERNEL.replace("BODY", "image[i] * k"))
    graph_file = tmp_path / "g.yaml"
    graph_file.write_text(GRAPH)
    graph = load_graph(graph_file, registry)
    sched = Scheduler(graph, device="cpu")
    said: list[str] = []
    session = ControlSession(sched, ControlSettings.resolve(None, watch=True), graph_path=graph_file,
                             load=lambda p, t: load_graph(p, registry, text=t), say=said.append)
    session.start()
    sched.setup()
    thread = threading.Thread(target=sched.run, daemon=True)
    thread.start()
    try:
        _wait(lambda: KEPT and _latest_is(lambda s: s * 0.5))
        old = sched.nodes["k"].node

        # line 7 no longer compiles: the error names gain.cu:7, the old kernel goes on
        mark = len(said)
        _save(cu, KERNEL.replace("BODY", "image[i] * k +"))
        _wait(lambda: any("reload failed" in line for line in said[mark:]))
        text = "\n".join(said[mark:])
        assert "gain.cu changed: rebuilding k: reload failed" in text, text
        assert "the kernel did not compile" in text and "kernels/gain.cu:7: error:" in text, text
        frames = len(KEPT)
        _wait(lambda: len(KEPT) > frames + 5)
        assert sched.nodes["k"].node is old and _latest_is(lambda s: s * 0.5)
        assert thread.is_alive()

        # fixed: the new kernel runs
        mark = len(said)
        _save(cu, KERNEL.replace("BODY", "image[i] * k + 0.25f"))
        _wait(lambda: _latest_is(lambda s: s * 0.5 + 0.25))
        assert sched.nodes["k"].node is not old
        _wait(lambda: any("reloaded" in line for line in said[mark:]))  # said after the swap
    finally:
        sched.stop()
        thread.join(timeout=10)
        session.stop()
        sched.teardown()
