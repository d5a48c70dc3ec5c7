"""StyleGAN2's fused kernels (``flowml_gan.sg2_fused``), their CUDA source compiled as C++ by
g++ and run on the CPU (``fused.CpuBackend``), against the reference ops: the epilogue bit for
bit (float32 and float16), the FIR epilogue of an up-sampling layer and the skip image's
up-sampling with the toRGB output added, the modulated weights in both layouts, and the whole
generator on NVIDIA's fixture (within 1e-4 of NVIDIA's image) in every noise mode, batched,
mixed precision, with a hooked affine. ``test_gan_sg2_fused_cuda.py`` runs them on the GPU."""

import shutil

import pytest
import torch

from flowml_gan import sg2_fused
from flowml_gan.fused import CpuBackend
from flowml_gan.ops import bias_act, setup_filter, up_conv_padding, upfirdn2d, upsample2d
from flowml_gan.stylegan2 import Generator
from test_gan_parity import fixture

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to compile the kernels for the CPU")
CPU = CpuBackend()


def reference_epilogue(t, noise, strength, b, act, gain, clamp):
    """What modulated_conv2d and bias_act do after the convolution."""
    if noise is not None:  # (H, W), or (B, H, W) as the reference's (B, 1, H, W)
        n = noise if noise.ndim == 2 else noise.unsqueeze(1)
        t = t + (n * strength).to(t.dtype)
    return bias_act(t, b.to(t.dtype), act=act, gain=gain, clamp=clamp)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("noise_kind", ["shared", "per_sample", None])
@pytest.mark.parametrize("act,gain,clamp", [("lrelu", 2 ** 0.5, 4.0), ("linear", 1.0, None), ("relu", 3.0, 0.5)])
def test_epilogue_equals_the_reference_bit_for_bit(dtype, noise_kind, act, gain, clamp):
    torch.manual_seed(0)
    t = (torch.randn(2, 3, 5, 7) * 3).to(dtype)
    b, strength = torch.randn(3), torch.tensor(0.7)
    noise = {"shared": torch.randn(5, 7), "per_sample": torch.randn(2, 5, 7), None: None}[noise_kind]
    want = reference_epilogue(t, noise, strength, b, act, gain, clamp)
    y = t.clone()
    got = sg2_fused.fir_epilogue(CPU, y, out=y, noise=noise, strength=strength if noise is not None else None,
                                 bias=b, act=act, gain=gain, clamp=clamp)
    assert got.data_ptr() == y.data_ptr() and got.dtype == dtype  # in place
    assert torch.equal(got, want)
    if clamp is not None:
        assert want.abs().max() == clamp  # the clamp is exercised


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("size,padding", [(9, 1), (4, 0)])  # padding 0: the FIR crops
def test_up_sampling_layer_fir_epilogue(dtype, size, padding):
    """The transposed convolution's output through the FIR, noise, bias, lrelu, gain, clamp."""
    torch.manual_seed(1)
    f = setup_filter([1, 3, 3, 1])
    (pyt, pxt), pad = up_conv_padding(3, 3, f, 2, padding)
    t = (torch.randn(2, 4, 2 * size + 1 - 2 * pyt, 2 * size + 1 - 2 * pxt) * 3).to(dtype)
    want_fir = upfirdn2d(t, f, padding=pad, gain=4)
    noise, b = torch.randn(*want_fir.shape[2:]), torch.randn(4)
    want = reference_epilogue(want_fir, noise, torch.tensor(0.3), b, "lrelu", 2 ** 0.5, 4.0)
    got = sg2_fused.fir_epilogue(CPU, t, f, padding=pad, fgain=4.0, noise=noise, strength=torch.tensor(0.3),
                                 bias=b, act="lrelu", gain=2 ** 0.5, clamp=4.0)
    assert got.shape == want.shape and got.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-2  # the FIR sums in its own order
    assert (got.float() - want.float()).abs().max() <= tol * want.float().abs().max()


@pytest.mark.parametrize("ydtype", [torch.float32, torch.float16])
def test_skip_image_up_sampling_plus_torgb(ydtype):
    torch.manual_seed(2)
    f = setup_filter([1, 3, 3, 1])
    img, y = torch.randn(2, 3, 6, 6), torch.randn(2, 3, 12, 12).to(ydtype)
    want = upsample2d(img, f) + y.float()
    got = sg2_fused.upsample_add(CPU, img, f, y)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert (got - want).abs().max() <= 1e-6 * want.abs().max()


@pytest.mark.parametrize("demodulate,transpose,flip", [(True, False, False), (True, True, False),
                                                      (False, False, True), (True, True, True)])
def test_modulated_weights_in_the_convolutions_layout(demodulate, transpose, flip):
    torch.manual_seed(3)
    b, o, i, k = 2, 5, 300, 3  # 300 * 9 taps: several per thread of the block
    weight, styles = torch.randn(o, i, k, k), torch.randn(b, i) + 1
    w = weight.unsqueeze(0) * (styles * 0.5).reshape(b, 1, i, 1, 1)
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
    if flip:
        w = w.flip([3, 4])
    if transpose:
        w = w.transpose(1, 2)
    want = w.reshape(-1, *w.shape[2:])
    for dtype in (torch.float32, torch.float16):
        got = sg2_fused.modulate(CPU, weight, styles, dtype, demodulate=demodulate, transpose=transpose,
                                 flip=flip, style_gain=0.5)
        assert got.shape == want.shape and got.dtype == dtype
        tol = 1e-6 if dtype == torch.float32 else 1e-3
        assert (got.float() - want).abs().max() <= tol * want.abs().max()


@pytest.fixture(scope="module")
def G():
    d = fixture("sg2_64.pt")
    G = Generator(**d["init_kwargs"]).eval().requires_grad_(False)
    G.load_state_dict(d["state_dict"])
    return G, d


def synth(G, ws, backend=None, **kw):
    with torch.no_grad():
        if backend is None:
            return G.synthesis(ws, **kw)
        with sg2_fused.forced(backend):
            return G.synthesis(ws, **kw)


def test_fused_generator_gives_nvidias_image(G):
    G, d = G
    with torch.no_grad():
        ws = G.mapping(d["z"], None, truncation_psi=0.7)
    got = synth(G, ws, CPU, noise_mode="const", force_fp32=True)
    assert (got - d["img"]).abs().max() <= 1e-4
    assert (got - synth(G, ws, noise_mode="const", force_fp32=True)).abs().max() <= 1e-5


@pytest.mark.parametrize("noise_mode", ["random", "none"])
def test_fused_generator_noise_modes_and_batches(G, noise_mode):
    G, d = G
    with torch.no_grad():
        ws = G.mapping(torch.cat([d["z"], d["z"].flip(0)]), None)
    torch.manual_seed(5)
    want = synth(G, ws, noise_mode=noise_mode, force_fp32=True)
    torch.manual_seed(5)
    got = synth(G, ws, CPU, noise_mode=noise_mode, force_fp32=True)
    assert ws.shape[0] == 4 and (got - want).abs().max() <= 1e-5


def test_fused_generator_mixed_precision_is_the_references(G):
    G, d = G
    with torch.no_grad():
        ws = G.mapping(d["z"][:1], None, truncation_psi=0.7)
    want, got = synth(G, ws, noise_mode="const"), synth(G, ws, CPU, noise_mode="const")
    fp32 = synth(G, ws, noise_mode="const", force_fp32=True)
    # the fp16 blocks round alike to a few half-precision steps: closer than fp16 is to fp32
    assert (got - want).abs().max() <= 0.5 * (want - fp32).abs().max()


def test_hooked_affine_still_runs_its_hooks(G):
    G, d = G
    seen = []
    h = G.synthesis.b16.conv1.affine.register_forward_hook(lambda m, a, out: seen.append(out))
    try:
        with torch.no_grad():
            ws = G.mapping(d["z"][:1], None)
        synth(G, ws, CPU, noise_mode="const", force_fp32=True)
    finally:
        h.remove()
    assert len(seen) == 1 and seen[0].shape == (1, G.synthesis.b16.conv1.weight.shape[1])


class ConvFlags(torch.overrides.TorchFunctionMode):
    """Records, at each convolution the generator calls, whether cuDNN was held to
    deterministic algorithms then (the flag is read per call by torch's cuDNN path)."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, bool]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("conv2d", "conv_transpose2d"):
            self.seen.append((name, torch.backends.cudnn.deterministic))
        return func(*args, **(kwargs or {}))


def test_convolutions_run_with_deterministic_cudnn(G, monkeypatch):
    """Issue 14's bit-exact restore of an edit, on the GPU: the up-sampling layers' transposed
    convolutions are cuDNN's backward data, whose fast algorithms may add split-K partials
    with atomics, so a replay of a captured generator differed in the last bits from the one
    before (an edit removed did not give the first frame back). Every convolution of the
    fused layers runs with cuDNN's deterministic flag on, and only for that call."""
    G, d = G
    with torch.no_grad():
        ws = G.mapping(d["z"][:1], None)
    assert not torch.backends.cudnn.deterministic
    modes = ConvFlags()
    with modes:
        synth(G, ws, CPU, noise_mode="const", force_fp32=True)
    kinds = {name for name, _ in modes.seen}
    assert kinds == {"conv2d", "conv_transpose2d"}, modes.seen  # both kinds are covered
    assert all(flag for _, flag in modes.seen), modes.seen
    assert not torch.backends.cudnn.deterministic  # restored after each call
    monkeypatch.setenv(sg2_fused.DETERMINISTIC_ENV, "0")  # the way out: cuDNN picks freely
    off = ConvFlags()
    with off:
        synth(G, ws, CPU, noise_mode="const", force_fp32=True)
    assert off.seen and not any(flag for _, flag in off.seen)


def test_the_switch_and_when_the_reference_runs(monkeypatch):
    x = torch.randn(1, 2, 4, 4)
    assert sg2_fused.backend_for(x) is None  # a CPU tensor, nothing forced
    with sg2_fused.forced(CPU):
        assert sg2_fused.backend_for(x) is CPU
        assert sg2_fused.backend_for(x.double()) is None
        assert sg2_fused.backend_for(x.transpose(2, 3)) is None  # not NCHW contiguous
        p = torch.nn.Parameter(torch.randn(2))
        assert sg2_fused.backend_for(x, p) is None  # training: a gradient to compute
        with torch.no_grad():
            assert sg2_fused.backend_for(x, p) is CPU
    monkeypatch.setenv(sg2_fused.ENV, "0")
    assert sg2_fused.sg2_fused_unavailable() == "FLOWML_GAN_SG2_FUSED=0"
    sg2_fused.set_fused(False)
    try:
        assert "set_fused(False)" in sg2_fused.sg2_fused_unavailable()
    finally:
        sg2_fused.set_fused(None)


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="needs a filter"):
        sg2_fused.fir_epilogue(CPU, torch.randn(1, 1, 4, 4), up=2)
    with pytest.raises(ValueError, match="noise must be"):
        sg2_fused.fir_epilogue(CPU, torch.randn(1, 1, 4, 4), noise=torch.randn(3, 3), strength=torch.tensor(1.0))
    with pytest.raises(ValueError, match="styles must be"):
        sg2_fused.modulate(CPU, torch.randn(2, 3, 1, 1), torch.randn(1, 4), torch.float32)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc to compile the kernels for sm_90")
def test_the_cuda_source_compiles_for_the_gpu(tmp_path):
    """The GPU side of the source (``__CUDACC__``; NVRTC takes the same C++) at SG2-1024's shapes."""
    import subprocess

    from flowml_gan.sg2_fused_source import fir_epi_source, modulate_source

    sources = [modulate_source("float16", 32, 64, 9, True, True, True, False),
               fir_epi_source("float32", 32, 1025, 1025, 1024, 1024, 4, 4, 1, 1, 1, False, "shared",
                              True, "lrelu", True, True, None, False),
               fir_epi_source("float32", 3, 512, 512, 1024, 1024, 4, 4, 2, 2, 2, False, "per_sample",
                              False, "relu", False, False, "float16", True)]
    for n, src in enumerate(sources):
        cu = tmp_path / f"k{n}.cu"
        cu.write_text(src)
        done = subprocess.run(["nvcc", "-arch=sm_90", "-cubin", "--std=c++14", "-o", str(cu.with_suffix(".cubin")),
                               str(cu)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
