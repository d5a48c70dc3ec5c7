"""NVDEC (PyNvVideoCodec) against PyAV on the CPU: decoding in a graph and feeding training.

    python plugins/flowml-av/benchmarks/nvdec_bench.py --out DIR [--no-decode] [--no-loader] [--no-ceiling]

Makes its own test file (``h264_1080p.mp4``: testsrc2, 1920x1080, 240 frames, H.264 with
B-frames, a keyframe every 12 frames) with PyAV's libx264 (no ffmpeg CLI needed), or takes
it from ``FLOWML_TEST_VIDEOS``. Two parts, each timed after a warm-up:

1. decode: a graph ``capture.video`` -> a sink taking the frame, on cuda, 1080p decoded to
   float RGB tensors on the GPU: NVDEC with K = 1, 2, 4, 7 decoders (``decoders: K``, each on
   keyframe-aligned segments) against PyAV with one decoder and FFmpeg's frame threads on
   every core (planes uploaded, converted on the GPU). Frames a second and CPU used (process
   CPU time / wall: 1.0 = one core busy).
   Where the ceiling is (``ceiling``): the same K decoders without a graph (``ParallelFrames``
   read in a loop: NVDEC, our per-piece Python and the NV12 -> RGB kernels, no scheduler),
   raw PyNvVideoCodec in K threads (``get_batch_frames_by_index`` of PIECE frames, nothing
   else: NVDEC and the binding alone), and the graph's tick alone (``capture.pattern`` 16x16
   -> the sink on cuda: what one frame a tick costs the scheduler). If raw PyNvVideoCodec
   stops near the graph's figure, the decoder (or its GIL use) is the ceiling; if it runs far
   ahead and the tick alone is near the graph's figure, the one-frame-a-tick graph is. K = 7
   is also run in the graph with ``--piece`` frames a decoder call (default 24 besides 8).
   Batched over time (``capture.video batch: B``, ``--batches``, default 8 and 32): a tick
   carries B frames ``(B, 3, H, W)`` and the sink takes the whole batch (one call, no loop
   over frames), so the scheduler's per-tick cost is paid once for B frames: NVDEC with
   ``--batch-decoders`` (default 4 and 7) and PyAV (1 decoder and ``--pyav-decoders``), fps
   counted in frames, over ``--batched-frames``; ``best_nvdec_batched_over_best_pyav`` is the
   best batched NVDEC row against the best PyAV row, batched or not.
2. loader: training a small super-resolution net on 5-frame sequences (random 512 px crops,
   input a quarter of that, target the middle frame), ``--steps`` steps (default 200: several
   epochs of the 236 samples) timed ``--repeats`` times in a row after a warm-up, the median
   reported (each repeat's figure kept): ``flowml.data.VideoLoader`` on NVDEC (7 decoders;
   GOP tasks, the default; on ``--files`` copies of the file, default 8; a task a sample,
   ``group=False``; windows of ``--ahead`` samples, default batch + 2 K against NVDEC's 64;
   with 1 decoder; ``overlap_epochs=False``: each epoch's graph set up when it begins),
   ``VideoLoader`` decoding
   on the CPU (FFmpeg, half the cores; the issue's GPU >= 3x the CPU path), and PyAV by hand in
   a torch ``DataLoader`` with one worker per core (persistent; each decoding one sample: seek,
   decode, crop, in the worker; scaled on the GPU in the loop), and the model alone on one
   batch kept on the GPU (``model_alone``: the ceiling any loader can reach). Samples a second,
   CPU used (children included), and for flowml the frames the decoders ran through a sample
   (``capture.clips``' counters, read through ``Epoch.scheduler``). The variant rows (a task a
   sample, ``--ahead``, 1 decoder) run once; ``--no-decode`` runs part 2 alone,
   ``--loader-rows NAME...`` only the rows named.

Writes ``nvdec_bench.json`` and ``nvdec_bench.txt`` (a summary) to ``--out`` and prints both.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

FILE = "h264_1080p.mp4"


def cpu_seconds() -> float:
    """CPU time of this process and its children (DataLoader workers, alive or reaped), in s."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + _live_children()


def _live_children() -> float:
    """utime + stime of the live child processes, from /proc (Linux)."""
    tick, me, total = os.sysconf("SC_CLK_TCK"), os.getpid(), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if int(fields[1]) == me:                       # ppid
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


class Meter:
    def __enter__(self):
        torch.cuda.synchronize()
        self.t0, self.c0 = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        torch.cuda.synchronize()
        self.wall = time.perf_counter() - self.t0
        self.cpu = (cpu_seconds() - self.c0) / self.wall


# -- 1. decoding in a graph -------------------------------------------------------------------
GRAPH = """\
flowml: 1
clock: v
device: cuda
nodes:
  v:    {{type: capture.video, params: {{path: {path}, decode: {decode}, decoders: {decoders}, loop: true,
                                       batch: {batch}}}}}
  sink: {{type: python.function, inputs: {{image: v/image}},
         params: {{path: {fx}, function: take, inputs: [image], outputs: []}}}}
"""


SINK = "def take(image):\n    assert image.is_cuda and image.dtype.is_floating_point and image.ndim == 4\n"
"""The sink: takes a tick's image, (B, 3, H, W) (B = 1 unbatched), whole; no loop over frames."""


def graph_decode(path: Path, decode: str, decoders: int, frames: int, tmp: Path, piece: int | None = None,
                 batch: int = 1) -> dict:
    """``capture.video`` -> the sink on cuda: ``frames`` frames (rounded up to whole batches of
    ``batch``; the file loops, so every tick is full), after a warm-up. fps counts frames."""
    from flowml.graph import load_graph
    from flowml.plugins import load_registry
    from flowml.runtime.scheduler import Scheduler

    fx = tmp / "fx.py"
    fx.write_text(SINK)
    g = tmp / f"decode_{decode}_{decoders}_{batch}.yaml"
    g.write_text(GRAPH.format(path=path, decode=decode, decoders=decoders, fx=fx, batch=batch))
    ticks = -(-frames // batch)
    frames = ticks * batch
    registry = load_registry()
    out = {}
    from flowml_av import parallel

    default, parallel.PIECE = parallel.PIECE, piece or parallel.PIECE  # read when the decoders start
    try:
        with Scheduler(load_graph(g, registry)) as sched:
            sched.run(frames=48 if batch == 1 else max(3, -(-96 // batch)))  # warm-up: decoder sessions, kernels
            out["decoder"] = sched.nodes["v"].node.decoder
            out["decoders"] = getattr(sched.nodes["v"].node, "decoders", 1)
            with Meter() as m:
                result = sched.run(frames=ticks)  # ticks
            assert result.ok, result.error
    finally:
        parallel.PIECE = default
    out.update(fps=round(frames / m.wall, 1), cpu_cores_used=round(m.cpu, 2), frames=frames)
    if batch > 1:
        out.update(batch=batch, ticks=ticks, ticks_per_s=round(ticks / m.wall, 1))
    if piece:
        out["piece"] = piece
    return out


# -- 1b. where the in-graph ceiling is ---------------------------------------------------------
def decoders_alone(path: Path, decoders: int, frames: int) -> dict:
    """K NVDEC decoders on keyframe segments, read in a plain loop (no graph): fps, cores."""
    from flowml_av.gpudecode import nv12_to_rgb
    from flowml_av.nvdec import NvdecVideo
    from flowml_av.parallel import ParallelFrames, plan

    info = NvdecVideo(str(path), "cuda")
    meta = info.info
    info.close()

    par = ParallelFrames(lambda: NvdecVideo(str(path), "cuda"), plan(meta, 0, True), decoders,
                         lambda v, k: v.nv12(k), lambda p: nv12_to_rgb(p[0], p[1], meta.colorspace, meta.full_range))
    try:
        for _ in range(max(48, 2 * 24 * decoders)):  # warm-up: every decoder opened and used
            next(par)
        with Meter() as m:
            for _ in range(frames):
                next(par)
    finally:
        par.close()
    return {"fps": round(frames / m.wall, 1), "cpu_cores_used": round(m.cpu, 2), "decoders": decoders}


def raw_pynvvideocodec(path: Path, decoders: int, frames: int, piece: int = 8) -> dict:
    """K threads each with a SimpleDecoder calling get_batch_frames_by_index on its own
    segments of ``piece`` frames, nothing else (no copies, no conversion): NVDEC and the binding."""
    import threading

    import PyNvVideoCodec as nvc

    from flowml_av.parallel import segments
    from flowml_av.probe import probe

    info = probe(str(path))
    parts = segments(info)
    torch.zeros(1, device="cuda")
    decs = [nvc.SimpleDecoder(str(path), gpu_id=0, use_device_memory=True,
                              output_color_type=nvc.OutputColorType.NATIVE) for _ in range(decoders)]
    per = -(-frames // decoders)

    def work(k, count):
        done, seg = 0, k
        while done < count:
            frames_ = list(parts[seg % len(parts)])
            for at in range(0, len(frames_), piece):
                got = decs[k].get_batch_frames_by_index(frames_[at:at + piece])
                done += len(got)
            seg += decoders

    for k in range(decoders):
        work(k, 24)
    threads = [threading.Thread(target=work, args=(k, per)) for k in range(decoders)]
    with Meter() as m:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return {"fps": round(per * decoders / m.wall, 1), "cpu_cores_used": round(m.cpu, 2), "decoders": decoders,
            "piece": piece}


TICK_GRAPH = """\
flowml: 1
clock: v
device: cuda
nodes:
  v:    {{type: capture.pattern, params: {{pattern: bars, size: [16, 16]}}}}
  sink: {{type: python.function, inputs: {{image: v/image}},
         params: {{path: {fx}, function: take, inputs: [image], outputs: []}}}}
"""


def tick_alone(frames: int, tmp: Path) -> dict:
    """The graph's cost of one frame a tick: a 16x16 pattern into the same sink, on cuda."""
    from flowml.graph import load_graph
    from flowml.plugins import load_registry
    from flowml.runtime.scheduler import Scheduler

    fx = tmp / "fx.py"
    fx.write_text(SINK)
    g = tmp / "tick.yaml"
    g.write_text(TICK_GRAPH.format(fx=fx))
    with Scheduler(load_graph(g, load_registry())) as sched:
        sched.run(frames=48)
        with Meter() as m:
            result = sched.run(frames=frames)
        assert result.ok, result.error
    return {"ticks_per_s": round(frames / m.wall, 1), "cpu_cores_used": round(m.cpu, 2)}


# -- 2. feeding training ----------------------------------------------------------------------
CROP, LENGTH = 512, 5


class SR(torch.nn.Module):
    """(B, 5, 3, h, w) -> (B, 3, 4h, 4w): a small video super-resolution net."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(15, 64, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.Conv2d(64, 48, 3, padding=1), torch.nn.PixelShuffle(4))

    def forward(self, x):
        b, t, c, h, w = x.shape
        return self.net(x.reshape(b, t * c, h, w))


def train(batches, steps: int, batch_size: int, prepare, repeats: int = 1) -> dict:
    """``repeats`` runs of ``steps`` training steps on ``prepare(batch) -> (lowres, target)``,
    one after another, after 3 warm-up steps: the median run's samples a second and cores."""
    model = SR().cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    it = iter(batches)

    def step():
        low, target = prepare(next(it))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.mse_loss(model(low).float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    runs = []
    for _ in range(repeats):
        with Meter() as m:
            for _ in range(steps):
                step()
        runs.append((steps * batch_size / m.wall, m.cpu))
    close = getattr(it, "close", None)
    if close:
        close()
    rate, cores = sorted(runs)[len(runs) // 2]
    return {"samples_per_s": round(rate, 1), "cpu_cores_used": round(cores, 2), "steps": steps, "batch": batch_size,
            "repeats": [round(r, 1) for r, _ in runs]}


def model_alone(steps: int, batch: int, repeats: int) -> dict:
    """The SR net's training step on one batch kept on the GPU: the ceiling of any loader."""
    low = torch.rand(batch, LENGTH, 3, CROP // 4, CROP // 4, device="cuda")
    target = torch.rand(batch, 3, CROP, CROP, device="cuda")
    return train(itertools.repeat(None), steps, batch, lambda _: (low, target), repeats)


class Counted:
    """A ``VideoLoader``'s epochs one after another, adding up ``capture.clips``' counters of
    each epoch's graph (``Epoch.scheduler``): samples made, tasks, frames the decoders ran through."""

    def __init__(self, loader):
        self.loader, self.samples, self.calls, self.frames = loader, 0, 0, 0
        self.first_batch_s: list[float] = []   # each epoch: its graph started -> its first batch

    def __iter__(self):
        while True:
            t0 = time.perf_counter()
            epoch, node = iter(self.loader), None
            try:
                for batch in epoch:
                    if node is None:  # the graph's nodes are dropped when it ends: keep the node
                        node = epoch.scheduler.nodes["clips"].node
                        self.first_batch_s.append(time.perf_counter() - t0)
                    yield batch
            finally:
                epoch.close()
                if node is not None:
                    self.samples += node.pos
                    self.calls += node.decode_calls
                    self.frames += node.decoded_frames

    def counters(self) -> dict:
        n, starts = max(1, self.samples), sorted(self.first_batch_s)
        return {"decoded_frames_per_sample": round(self.frames / n, 2), "tasks_per_sample": round(self.calls / n, 2),
                "samples_counted": self.samples, "epochs": len(starts),
                "epoch_first_batch_s_median": round(starts[len(starts) // 2], 3) if starts else None}


def flowml_loader(paths: list[Path], decode: str, steps: int, batch: int, decoders: int | None = None,
                  group: bool = True, ahead: int | None = None, repeats: int = 1, overlap: bool = True) -> dict:
    from flowml.data import VideoDataset, VideoLoader

    cut = {"random_crop": [CROP, CROP], "random_flip": True, "crop_first": True}
    data = VideoDataset(paths, LENGTH, processing={          # one decoded sequence, two outputs
        "input": {**cut, "scale_factor": 0.25}, "target": {**cut, "index_map": [-1, -1, 0, -1, -1]}})
    loader = VideoLoader(data, batch_size=batch, shuffle=True, seed=0, device="cuda", decode=decode, prefetch=3,
                         decoders=decoders, group=group, ahead=ahead, overlap_epochs=overlap)

    def prepare(b):
        return b["input"], b["target"][:, 0]

    counted = Counted(loader)
    try:
        out = train(counted, steps, batch, prepare, repeats)
    finally:
        loader.close()  # the next epoch's graph, started ahead (overlap_epochs)
    out.update(counted.counters())
    out["decoder"] = loader.last_decoder
    out["decoders"] = decoders or "auto"
    out.update(group=group, ahead=ahead or "default", files=len(paths), epoch_samples=len(data))
    return out


def _forever(loader):
    while True:
        yield from loader


def copies(path: Path, n: int, folder: Path) -> list[Path]:
    """``n`` files with ``path``'s content under other names (a dataset of several files)."""
    import shutil

    out = []
    for k in range(n):
        dst = folder / f"copy{k}_{path.name}"
        if not dst.exists():
            shutil.copyfile(path, dst)
        out.append(dst)
    return out


class HandDataset(torch.utils.data.Dataset):
    """What one writes by hand: PyAV in each worker, seek to the sample, decode 5 frames, crop."""

    def __init__(self, path: Path):
        from flowml_av.probe import probe

        self.path, self.info = str(path), probe(path)
        self.n = self.info.frames - LENGTH + 1
        self.container = None

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        import av
        import numpy as np

        if self.container is None:
            self.container = av.open(self.path)
            self.container.streams.video[0].thread_count = 1  # one core per worker
        c = self.container
        stream = c.streams.video[0]
        pts = self.info.pts[i:i + LENGTH]
        keys = [k for k in self.info.keyframes if k <= pts[0]]
        c.seek(keys[-1], backward=True, any_frame=False, stream=stream)
        frames = []
        for f in c.decode(stream):
            if f.pts in pts:
                frames.append(f.to_ndarray(format="rgb24"))
            if len(frames) == LENGTH:
                break
        x = np.random.randint(0, self.info.width - CROP + 1)
        y = np.random.randint(0, self.info.height - CROP + 1)
        clip = np.stack(frames)[:, y:y + CROP, x:x + CROP]
        if np.random.rand() < 0.5:
            clip = clip[:, :, ::-1]
        return torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2)  # (5, 3, 512, 512) uint8


def hand_loader(path: Path, steps: int, batch: int, workers: int, repeats: int = 1) -> dict:
    loader = torch.utils.data.DataLoader(HandDataset(path), batch_size=batch, shuffle=True, num_workers=workers,
                                         pin_memory=True, drop_last=True, prefetch_factor=2,
                                         persistent_workers=True)

    def prepare(b):
        clip = b.cuda(non_blocking=True).float() / 255
        low = torch.nn.functional.interpolate(clip.flatten(0, 1), scale_factor=0.25, mode="bilinear",
                                              antialias=True).unflatten(0, clip.shape[:2])
        return low, clip[:, LENGTH // 2]

    out = train(_forever(loader), steps, batch, prepare, repeats)
    out["workers"] = workers
    return out


def test_file(out: Path) -> Path:
    """``h264_1080p.mp4`` from FLOWML_TEST_VIDEOS, else made in ``out`` (PyAV's libx264 without an ffmpeg CLI)."""
    folder = os.environ.get("FLOWML_TEST_VIDEOS")
    if folder and (Path(folder) / FILE).is_file():
        return (Path(folder) / FILE).resolve()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from av_test_videos import make

    return make(FILE, out).resolve()


def summary(res: dict) -> str:
    g, ld = res.get("graph_decode", {}), res["loader"]
    lines = [f"{res['device']}, {res['cores']} cores, {res['file']} ({res['make_s']} s to make)",
             "graph decode 1080p H.264 -> float RGB on cuda (fps, cores used):" if g else "graph decode: not run"]
    for name, r in g.items():
        if isinstance(r, dict):
            per = f", batch {r['batch']}: {r['ticks_per_s']} ticks/s" if r.get("batch") else ""
            lines.append(f"  {name:10s} {r.get('fps', r.get('error'))!s:>8} fps  {r.get('cpu_cores_used', '')} cores "
                         f"({r.get('decoder')}, {r.get('decoders')} decoder(s){per})")
    if g:
        lines.append(f"  best NVDEC / PyAV (1 decoder, frame threads on every core): {g.get('best_nvdec_over_pyav')}x "
                     f"(target 3x); / the best PyAV: {g.get('best_nvdec_over_best_pyav')}x  (one frame a tick)")
    if "best_nvdec_batched_over_best_pyav" in g:
        lines.append(f"  batched over time: best NVDEC batch ({g.get('best_nvdec_batched')}) / the best PyAV, batched or "
                     f"not ({g.get('best_pyav')}): {g['best_nvdec_batched_over_best_pyav']}x (target 3x); "
                     f"/ PyAV 1 decoder unbatched: {g.get('best_nvdec_batched_over_pyav')}x")
    for name, r in res.get("ceiling", {}).items():
        lines.append(f"  ceiling: {name:28s} {r.get('fps', r.get('ticks_per_s', r.get('error')))!s:>8} /s  "
                     f"{r.get('cpu_cores_used', '')} cores")
    if not ld:
        return "\n".join([*lines, "loader: not run (--no-loader)"])
    lines.append("loader, SR net on 5 x 512 px crops (median samples/s [each repeat], cores used, frames decoded "
                 "a sample):")
    for name, r in ld.items():
        if isinstance(r, dict):
            frames = (f", {r['decoded_frames_per_sample']} frames/sample, {r['epochs']} epochs, first batch of an "
                      f"epoch {r['epoch_first_batch_s_median']} s" if "decoded_frames_per_sample" in r else "")
            lines.append(f"  {name:26s} {r.get('samples_per_s', r.get('error'))!s:>8} {r.get('repeats', '')}  "
                         f"{r.get('cpu_cores_used', '')} cores{frames}")
    lines.append(f"  flowml NVDEC / PyAV DataLoader: {ld.get('ratio_flowml_nvdec_over_pyav_dataloader')}x; best flowml run: "
                 f"{ld.get('ratio_best_flowml_over_pyav_dataloader')}x (target 2x); flowml NVDEC / flowml CPU decode: "
                 f"{ld.get('ratio_flowml_nvdec_over_flowml_cpu')}x (target 3x); flowml NVDEC / the model alone: "
                 f"{ld.get('fraction_of_model_alone')}")
    return "\n".join(lines)


def guarded(fn, *args, **kwargs) -> dict:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # one failing configuration leaves the others' numbers
        return {"error": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=480, help="frames decoded per graph run")
    ap.add_argument("--steps", type=int, default=200, help="training steps a timed loader run (several epochs)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs a loader row (the median is reported)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--decoders", type=int, nargs="+", default=[1, 2, 4, 7], help="NVDEC decoder counts")
    ap.add_argument("--pyav-decoders", type=int, nargs="*", default=[2], help="PyAV decoder counts besides 1")
    ap.add_argument("--loader-decoders", type=int, default=7,
                    help="VideoLoader's decoders (one a NVDEC engine: 7 on an H200)")
    ap.add_argument("--files", type=int, default=8, help="copies of the file in the multi-file loader row (0: none)")
    ap.add_argument("--piece", type=int, default=24, help="frames a decoder call in the extra K = 7 graph run")
    ap.add_argument("--ahead", type=int, default=None,
                    help="samples grouped at a time in the extra loader run (default batch + 2 K: the window "
                         "before NVDEC's default became 64)")
    ap.add_argument("--no-decode", action="store_true", help="skip part 1 (decoding in a graph, and its ceiling)")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the runs that say where the ceiling is")
    ap.add_argument("--no-loader", action="store_true", help="skip part 2 (the training loader)")
    ap.add_argument("--batches", type=int, nargs="*", default=[8, 32],
                    help="capture.video batch: B for the batched graph rows (none: no batched rows)")
    ap.add_argument("--batch-decoders", type=int, nargs="*", default=[4, 7], help="NVDEC decoder counts, batched")
    ap.add_argument("--batched-frames", type=int, default=1920, help="frames decoded per batched graph run")
    ap.add_argument("--loader-rows", nargs="*", default=None,
                    help="run only these loader rows (names as in the output; default: all)")
    ap.add_argument("--out", type=Path, default=None, help="folder for nvdec_bench.json and .txt")
    args = ap.parse_args()
    torch.zeros(1, device="cuda")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = test_file(Path(tmp))
        res: dict = {"device": torch.cuda.get_device_name(), "cores": os.cpu_count(), "file": FILE,
                     "make_s": round(time.perf_counter() - t0, 1)}
        from flowml_av.nvdec import engines

        res["nvdec_engines"] = engines(str(path))
        if not args.no_decode:
            res["graph_decode"] = decode_rows(args, path, Path(tmp))
            if not args.no_ceiling:
                kmax = max(args.decoders)
                res["ceiling"] = {
                    f"decoders_alone_k{kmax}": guarded(decoders_alone, path, kmax, args.frames),
                    "decoders_alone_k1": guarded(decoders_alone, path, 1, args.frames // 2),
                    f"raw_pynvvideocodec_k{kmax}": guarded(raw_pynvvideocodec, path, kmax, args.frames),
                    f"raw_pynvvideocodec_k{kmax}_piece24": guarded(raw_pynvvideocodec, path, kmax, args.frames, 24),
                    "raw_pynvvideocodec_k1": guarded(raw_pynvvideocodec, path, 1, args.frames // 2),
                    "graph_tick_alone": guarded(tick_alone, 2 * args.frames, Path(tmp))}
        if args.out:  # the decode numbers stand if the loader part runs out of time
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "nvdec_bench.json").write_text(json.dumps(res, indent=1))
        res["loader"] = {} if args.no_loader else loader_rows(args, path, Path(tmp))
    text = json.dumps(res, indent=1)
    brief = summary(res)
    print(text)
    print(brief)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "nvdec_bench.json").write_text(text)
        (args.out / "nvdec_bench.txt").write_text(brief + "\n")


def decode_rows(args, path: Path, tmp: Path) -> dict:
    """Part 1: the graph decode rows and their ratios."""
    g = {f"nvdec_k{k}": guarded(graph_decode, path, "cuda", k, args.frames, tmp) for k in args.decoders}
    kmax = max(args.decoders)
    if args.piece:
        g[f"nvdec_k{kmax}_piece{args.piece}"] = guarded(graph_decode, path, "cuda", kmax, args.frames, tmp, args.piece)
    g["pyav"] = guarded(graph_decode, path, "cpu", 1, args.frames, tmp)
    for k in args.pyav_decoders:  # PyAV on segments too: K decoders of cores / K threads
        g[f"pyav_k{k}"] = guarded(graph_decode, path, "cpu", k, args.frames, tmp)
    for b in args.batches:  # batched over time: B frames a tick
        for k in args.batch_decoders:
            g[f"nvdec_k{k}_b{b}"] = guarded(graph_decode, path, "cuda", k, args.batched_frames, tmp, batch=b)
        g[f"pyav_b{b}"] = guarded(graph_decode, path, "cpu", 1, args.batched_frames, tmp, batch=b)
        for k in args.pyav_decoders:
            g[f"pyav_k{k}_b{b}"] = guarded(graph_decode, path, "cpu", k, args.batched_frames, tmp, batch=b)
    rows = {k: r for k, r in g.items() if isinstance(r, dict) and "fps" in r}
    fps = [r["fps"] for k, r in rows.items() if k.startswith("nvdec") and "batch" not in r]
    cpu = [r["fps"] for k, r in rows.items() if k.startswith("pyav") and "batch" not in r]
    if fps and "fps" in g["pyav"]:  # one frame a tick (the old rows' ratios, unchanged)
        g["best_nvdec_over_pyav"] = round(max(fps) / g["pyav"]["fps"], 2)
        g["best_nvdec_over_best_pyav"] = round(max(fps) / max(cpu), 2)
    batched = {k: r["fps"] for k, r in rows.items() if k.startswith("nvdec") and "batch" in r}
    pyav_all = {k: r["fps"] for k, r in rows.items() if k.startswith("pyav")}
    if batched and pyav_all:
        best_nv, best_cpu = max(batched, key=batched.get), max(pyav_all, key=pyav_all.get)
        g["best_nvdec_batched"], g["best_pyav"] = best_nv, best_cpu
        g["best_nvdec_batched_over_best_pyav"] = round(batched[best_nv] / pyav_all[best_cpu], 2)
        if "fps" in g["pyav"]:
            g["best_nvdec_batched_over_pyav"] = round(batched[best_nv] / g["pyav"]["fps"], 2)
    return g


def loader_rows(args, path: Path, tmp: Path) -> dict:
    """Part 2: the training loader rows (medians of ``--repeats`` runs of ``--steps`` steps) and their ratios."""
    steps, batch, k, n = args.steps, args.batch, args.loader_decoders, args.repeats
    ahead = args.ahead or batch + 2 * k
    rows = {  # name: what runs it (--loader-rows picks some)
        "model_alone": lambda: model_alone(steps, batch, n),
        "flowml_nvdec": lambda: flowml_loader([path], "cuda", steps, batch, k, repeats=n),
        f"flowml_nvdec_{args.files}_files": lambda: flowml_loader(copies(path, args.files, tmp), "cuda", steps,
                                                                  batch, k, repeats=n),
        "flowml_nvdec_no_overlap": lambda: flowml_loader([path], "cuda", steps, batch, k, repeats=n, overlap=False),
        "flowml_cpu_decode": lambda: flowml_loader([path], "cpu", steps, batch, None, repeats=n),
        "pyav_dataloader": lambda: hand_loader(path, steps, batch, args.workers, n),
        "flowml_nvdec_per_sample": lambda: flowml_loader([path], "cuda", steps, batch, k, group=False),
        f"flowml_nvdec_ahead{ahead}": lambda: flowml_loader([path], "cuda", steps, batch, k, ahead=ahead),
        f"flowml_nvdec_{args.files}_files_ahead{ahead}": lambda: flowml_loader(
            copies(path, args.files, tmp), "cuda", steps, batch, k, ahead=ahead),
        "flowml_nvdec_1_decoder": lambda: flowml_loader([path], "cuda", max(4, steps // 4), batch, 1)}
    if args.files <= 1:
        del rows[f"flowml_nvdec_{args.files}_files"], rows[f"flowml_nvdec_{args.files}_files_ahead{ahead}"]
    wanted = args.loader_rows or list(rows)
    ld = {name: guarded(fn) for name, fn in rows.items() if name in wanted}

    def rate(name):
        r = ld.get(name)
        return r.get("samples_per_s") if isinstance(r, dict) else None

    flowml, hand = rate("flowml_nvdec"), rate("pyav_dataloader")
    if flowml and hand:
        ld["ratio_flowml_nvdec_over_pyav_dataloader"] = round(flowml / hand, 2)
        best = max(r for name in ld if name.startswith("flowml_nvdec") and (r := rate(name)))
        ld["ratio_best_flowml_over_pyav_dataloader"] = round(best / hand, 2)
    if flowml and rate("flowml_cpu_decode"):
        ld["ratio_flowml_nvdec_over_flowml_cpu"] = round(flowml / rate("flowml_cpu_decode"), 2)
    if flowml and rate("model_alone"):
        ld["fraction_of_model_alone"] = round(flowml / rate("model_alone"), 2)
    return ld


if __name__ == "__main__":
    main()
