"""The CuPy path of flowml::weighted_filter on a GPU (``cuda``-marked: skipped without one).

Run on a GPU machine with CuPy installed (``pip install -e 'plugins/flowml-kernels[cuda]'``)::

    python -m pytest -q -p no:cacheprovider -m cuda plugins/flowml-kernels/tests
"""

from __future__ import annotations

import pytest
import torch

from flowml_kernels import cupy_backend, weighted_filter
from flowml_kernels.reference import filter_ref, wgrad_ref

pytestmark = pytest.mark.cuda

TOL = {torch.float32: (1e-5, 1e-4), torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1.6e-2)}
SHAPES = [(1, 3, 37, 53), (2, 32, 24, 40), (3, 1, 17, 300)]


@pytest.fixture(autouse=True)
def _needs_cupy():
    why = cupy_backend.unavailable()
    assert why is None, f"the CUDA tests need CuPy on this GPU machine: {why}"


def _inputs(shape, n, dtype, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    b, c, h, w = shape
    x = torch.rand(shape, device="cuda", generator=g)
    wt = torch.softmax(torch.randn((b, n * n, h, w), device="cuda", generator=g), dim=1)
    return x.to(dtype), wt.to(dtype)


def _close(out, ref, dtype, scale=1.0):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(out.float(), ref.float(), rtol=rtol * scale, atol=atol * scale)


@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("splat", [False, True], ids=["gather", "splat"])
@pytest.mark.parametrize("n", [3, 5, 9])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_cupy_forward_and_gradients_match_the_reference(shape, n, splat, dtype):
    x, w = _inputs(shape, n, dtype)
    x.requires_grad_(True)
    w.requires_grad_(True)
    out = weighted_filter(x, w, n, splat)
    ref = filter_ref(x.detach().double(), w.detach().double(), n, splat)
    _close(out, ref, dtype)
    g = torch.rand_like(out)
    gx, gw = torch.autograd.grad(out, (x, w), g)
    gd, xd, wd = g.double(), x.detach().double(), w.detach().double()
    _close(gx, filter_ref(gd, wd, n, not splat), dtype)
    gw_ref = wgrad_ref(xd, gd, n) if splat else wgrad_ref(gd, xd, n)
    _close(gw, gw_ref, dtype, scale=shape[1])      # a sum over C channels


def test_cupy_path_is_the_one_taken_on_cuda():
    x, w = _inputs((1, 4, 16, 16), 3, torch.float32)
    direct = cupy_backend.filter_cuda(x, w, 3, False)
    before = cupy_backend._forward_kernel.cache_info()    # the compiled forward kernels
    out = weighted_filter(x, w, 3)
    after = cupy_backend._forward_kernel.cache_info()
    torch.testing.assert_close(out, direct, rtol=0, atol=0)
    # the op fetched a CuPy kernel (the one filter_cuda compiled: a hit, nothing new)
    assert after.hits == before.hits + 1 and after.currsize == before.currsize >= 1, (before, after)


@pytest.mark.parametrize("splat", [False, True], ids=["gather", "splat"])
@pytest.mark.parametrize("n", [3, 5])
def test_gradcheck_float64_on_the_cuda_kernels(n, splat):
    x = torch.rand(2, 3, 6, 7, device="cuda", dtype=torch.float64, requires_grad=True)
    w = torch.rand(2, n * n, 6, 7, device="cuda", dtype=torch.float64, requires_grad=True)
    out = weighted_filter(x, w, n, splat)
    torch.testing.assert_close(out, cupy_backend.filter_cuda(x.detach(), w.detach(), n, splat),
                               rtol=0, atol=0)   # the kernel, not the reference, ran
    assert torch.autograd.gradcheck(lambda a, b: weighted_filter(a, b, n, splat), (x, w))


def test_unsupported_dtype_on_cuda_says_what_to_do():
    x = torch.ones(1, 1, 4, 4, device="cuda", dtype=torch.int32)
    with pytest.raises(TypeError, match="cast it first"):
        cupy_backend.filter_cuda(x, torch.ones(1, 9, 4, 4, device="cuda", dtype=torch.int32), 3, False)


def test_opcheck_on_cuda():
    x, w = _inputs((1, 3, 9, 11), 5, torch.float32)
    torch.library.opcheck(torch.ops.flowml.weighted_filter.default,
                          (x.requires_grad_(True), w.requires_grad_(True), 5, False))


def test_side_stream_while_the_default_stream_is_busy():
    x, w = _inputs((2, 8, 256, 256), 9, torch.float32)
    expected = weighted_filter(x, w, 9, True)        # also compiles the kernel
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):  # once untimed, so that the side stream's blocks are cached:
        weighted_filter(x * 1.0, w, 9, True)  # a cudaMalloc may wait for the whole device
    torch.cuda.synchronize()
    torch.cuda._sleep(1_000_000_000)                 # the default stream busy for ~0.5 s
    with torch.cuda.stream(side):
        x2 = x * 1.0                                 # made on the side stream
        out = weighted_filter(x2, w, 9, True)
        done = torch.cuda.Event()
        done.record()
    done.synchronize()
    # the op ran on the side stream and waited for nothing queued on the default stream
    assert not torch.cuda.default_stream().query(), "the filter waited for the default stream"
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.cuda.synchronize()


def test_inside_a_captured_cuda_graph_replay_equals_eager():
    x, w = _inputs((1, 16, 64, 80), 5, torch.float16)
    static_x, static_w = x.clone(), w.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):                  # warm up: compile the kernels first
        weighted_filter(static_x, static_w, 5)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side):
        static_out = weighted_filter(static_x, static_w, 5)
    for seed in (1, 2):
        nx, nw = _inputs((1, 16, 64, 80), 5, torch.float16, seed=seed)
        static_x.copy_(nx)
        static_w.copy_(nw)
        graph.replay()
        torch.testing.assert_close(static_out, weighted_filter(nx, nw, 5), rtol=0, atol=0)


def test_kpn_training_step_on_gpu():
    from test_kernels_training import train

    for splat in (False, True):
        losses = train("cuda", splat=splat)
        assert losses[-1] < 0.9 * losses[0], losses


def test_compiled_forward_and_backward_on_cuda_match_eager():
    x, w = _inputs((1, 4, 32, 48), 5, torch.float32)
    x.requires_grad_(True)
    w.requires_grad_(True)
    f = torch.compile(lambda a, b: weighted_filter(a, b, 5, True).square().sum(), fullgraph=True)
    gx, gw = torch.autograd.grad(f(x, w), (x, w))
    ex, ew = torch.autograd.grad(weighted_filter(x, w, 5, True).square().sum(), (x, w))
    torch.testing.assert_close(gx, ex)
    torch.testing.assert_close(gw, ew)


@pytest.mark.parametrize("backend", ["cupy", "auto", "torch"])
def test_kpn_node_on_a_gpu_graph(backend):
    from flowml.testing import run_node
    from flowml_kernels.kpn import KpnWeightedFilter

    x, logits = _inputs((1, 3, 40, 64), 5, torch.float32)
    out = run_node(KpnWeightedFilter, {"image": x, "weights": logits}, device="cuda",
                   params={"kernel_size": 5, "normalize": "softmax", "backend": backend})["image"]
    assert out.is_cuda
    _close(out, filter_ref(x.double(), torch.softmax(logits.double(), 1), 5, False), torch.float32)


PLAN_SHAPES = [(2, 3, 37, 52), (1, 32, 24, 44), (1, 8, 17, 30)]
PLAN_DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.fixture(scope="module")
def every_plan_compiled():
    """Every (plan, dtype, N, C) kernel of the test below compiled first, 16 at a time (NVRTC
    runs outside the GIL): ~240 distinct kernels, minutes one by one on a bare machine."""
    import concurrent.futures

    from flowml_kernels import plans

    jobs = {(plan, str(dt).removeprefix("torch."), n, s[1]) for plan in plans.PLANS.values()
            for dt in PLAN_DTYPES for n in (3, 5, 9, 15) for s in PLAN_SHAPES
            if plan.unsupported(str(dt).removeprefix("torch."), n, s[1]) is None}

    def one(job) -> None:
        try:
            k = cupy_backend.plan_kernel(*job)
            k.compile() if hasattr(k, "compile") else k.kernel
        except Exception:
            pass                     # the test compiles it again and fails with the message

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(one, jobs))


@pytest.mark.parametrize("dtype", PLAN_DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(__import__("flowml_kernels.plans").plans.PLANS))
def test_every_forward_plan_on_the_gpu(name, dtype, every_plan_compiled):
    from flowml_kernels import plans

    plan = plans.PLANS[name]
    for shape in PLAN_SHAPES:
        for n in (3, 5, 9, 15):
            if plan.unsupported(str(dtype).removeprefix("torch."), n, shape[1]):
                continue
            x, w = _inputs(shape, n, dtype)
            out = cupy_backend.filter_cuda(x, w, n, False, plan=plan)
            _close(out, filter_ref(x.double(), w.double(), n, False), dtype)


@pytest.mark.parametrize("name", sorted(k for k, p in __import__("flowml_kernels.plans").plans
                                         .PLANS.items() if p.pf and not p.h2))
def test_prefetching_plans_give_the_plain_plans_bits_on_the_gpu(name, every_plan_compiled):
    """pf only moves loads earlier: the same FMAs in the same order as the plain plan."""
    import dataclasses

    from flowml_kernels import plans

    plan = plans.PLANS[name]
    plain = next(p for p in plans.PLANS.values()
                 if dataclasses.replace(p, name=name) == dataclasses.replace(plan, pf=0))
    for dtype in PLAN_DTYPES:
        for shape in PLAN_SHAPES:
            for n in (3, 5, 9):
                if plan.unsupported(str(dtype).removeprefix("torch."), n, shape[1]):
                    continue
                x, w = _inputs(shape, n, dtype)
                got = cupy_backend.filter_cuda(x, w, n, False, plan=plan)
                want = cupy_backend.filter_cuda(x, w, n, False, plan=plain)
                assert torch.equal(got, want), (name, plain.name, dtype, shape, n)


@pytest.mark.parametrize("name", sorted(k for k, p in __import__("flowml_kernels.plans").plans
                                         .PLANS.items() if p.h2 or p.kernel in ("h2w", "h2r")))
def test_half2_plans_give_the_half2_emulations_bits_on_the_gpu(name, every_plan_compiled):
    """h2, h2w and h2r (float16): fma.rn.f16x2 per tap in a row, float row sums: the bits of
    ``kernels_half2.h2_rows_ref`` on the CPU (as the CPU build of the kernel gives them);
    within the float16 tolerance of the reference by ``test_every_forward_plan_on_the_gpu``."""
    from kernels_half2 import h2_rows_ref

    from flowml_kernels import plans

    plan = plans.PLANS[name]
    for shape in PLAN_SHAPES:
        for n in (3, 5, 9, 15):
            if plan.unsupported("float16", n, shape[1]):
                continue
            x, w = _inputs(shape, n, torch.float16)
            got = cupy_backend.filter_cuda(x, w, n, False, plan=plan).cpu()
            want = h2_rows_ref(x.cpu(), w.cpu(), n)
            assert torch.equal(got.view(torch.int16), want.view(torch.int16)), (name, shape, n)


H2W_SHAPES = [(2, 33, 19, 21), (1, 32, 40, 136), (3, 3, 9, 64), (2, 5, 23, 36)]


@pytest.mark.parametrize("name", sorted(k for k, p in __import__("flowml_kernels.plans").plans
                                         .PLANS.items() if p.kernel in ("h2w", "h2r")))
def test_h2w_plans_bits_and_graph_replay_on_the_gpu(name):
    """h2w (cp.async double buffer on sm_80+, every channel in a block) and h2r (cp.async tile,
    a tap row's weights in registers for a channel block, LDS.64/128 rows): h2_rows_ref's bits
    for C 33 (a last chunk / block of one channel), C 5, odd W (the scalar path), W % 8 == 4
    (h2r p8: scalar weights, vector tile) and B 3; then the plan forced through the op, captured
    in a CUDA graph on a side stream: replay equals eager."""
    from kernels_half2 import h2_rows_ref

    from flowml_kernels import plans

    plan = plans.PLANS[name]
    for shape in H2W_SHAPES:
        for n in (3, 5, 7, 9):
            if plan.unsupported("float16", n, shape[1]):
                continue
            x, w = _inputs(shape, n, torch.float16, seed=n)
            got = cupy_backend.filter_cuda(x, w, n, False, plan=plan).cpu()
            want = h2_rows_ref(x.cpu(), w.cpu(), n)
            assert torch.equal(got.view(torch.int16), want.view(torch.int16)), (name, shape, n)
    saved, cupy_backend.FORCE_PLAN = cupy_backend.FORCE_PLAN, name
    try:
        x, w = _inputs((1, 32, 64, 128), 5, torch.float16)
        eager = weighted_filter(x, w, 5)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):              # warm up on the capturing stream
            weighted_filter(x, w, 5)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=side):
            out = weighted_filter(x, w, 5)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, eager), name
    finally:
        cupy_backend.FORCE_PLAN = saved


def test_raw_pointer_launches_are_used():
    x, w = _inputs((1, 4, 16, 16), 3, torch.float32)
    cupy_backend.filter_cuda(x, w, 3, False)
    assert cupy_backend.RAW_POINTERS, "CuPy refused raw pointers: launches go through DLPack"
