"""capture.clips' scheduling with K decoders (``clips.py``, ``grouping.gop_tasks``): on the CPU
here, against the straightforward path (one decoder, a call a sample) that must give the same
batches.

NVDEC cannot run on this machine, so where a test needs NVDEC-like concurrency (several
decoder threads whose per-frame cost releases the GIL) it uses ``SleepingCpuVideo``: a
*stand-in* for the planning logic only, PyAV's real frames with a sleep per frame asked for.
The NVDEC branch of a task (the contiguous run asked for, only the kept frames converted)
runs on ``NvdecVideo`` with ``test_av_open_gop.Lookahead`` standing in for PyNvVideoCodec.
"""

from __future__ import annotations

import threading
import time

import pytest
import torch

from flowml import EndOfStream
from flowml.testing import NodeHarness
from flowml_av import nvdec
from flowml_av.clips import HELD_WINDOWS, Clips
from flowml_av.cpudecode import CpuVideo
from flowml_av.grouping import Sample, gop_tasks, key_at_or_before
from flowml_av.parallel import keyframe_indices
from flowml_av.probe import probe

from av_test_videos import video
from test_av_nvdec_pts import on_cpu
from test_av_open_gop import Lookahead, decoded

FILES = ["h264_178x98.mp4", "hevc_178x98.mp4"]
SLEEP_PER_FRAME = 0.004


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("videos")
    return [str(video(name, tmp)) for name in FILES]


class SleepingCpuVideo(CpuVideo):
    """Stand-in for an NVDEC session, for the planning tests only: PyAV's frames, plus a
    sleep per frame asked for (the GIL released, as PyNvVideoCodec releases it)."""

    def frames(self, indices):
        time.sleep(SLEEP_PER_FRAME * len(indices))
        return super().frames(indices)


class TracedClips(Clips):
    """capture.clips on the stand-in decoders, recording when each task ran and how many ran at once."""

    def setup(self, ctx):
        self.trace: list[tuple[float, float, tuple[int, ...]]] = []
        self.running = self.most_at_once = 0
        self.trace_lock = threading.Lock()
        super().setup(ctx)

    def _open_video(self, file):
        return SleepingCpuVideo(self.paths[file], self.ctx.device, 1)

    def _decode_task(self, task):
        with self.trace_lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        t0 = time.monotonic()
        try:
            return super()._decode_task(task)
        finally:
            with self.trace_lock:
                self.running -= 1
                self.trace.append((t0, time.monotonic(), task.positions))


def batches_of(node_type, params):
    """Every batch, the time each was returned, and the node (after teardown)."""
    out, times = [], []
    with NodeHarness(node_type, params) as h:
        while True:
            try:
                out.append(h.process())
            except EndOfStream:
                return out, times, h.node
            times.append(time.monotonic())
            if len(out) == 1 and getattr(h.node, "pool", None) is not None:
                h.node.windows_after_first = h.node.windows


def expected_frames(order, index, keys, window):
    """Frames the GOP tasks run through, worked out here: per window, per (file, GOP) of the
    frames its samples need, the GOP's keyframe .. the last frame needed."""
    total = 0
    for a in range(0, len(order), window):
        last: dict[tuple[int, int], int] = {}
        for k in order[a:a + window]:
            file, frames = index.frames(k)
            for f in frames:
                gop = (file, key_at_or_before(keys[file], f))
                last[gop] = max(last.get(gop, -1), f)
        total += sum(f - key + 1 for (_, key), f in last.items())
    return total


def test_gop_tasks_cover_each_frame_once_from_its_keyframe_longest_first():
    keys = [[0, 12, 24], [0, 10]]
    samples = [Sample(0, 0, (10, 11, 12, 13)), Sample(1, 0, (2, 3)), Sample(2, 1, (12, 13)), Sample(3, 0, (25,))]
    tasks = gop_tasks(samples, keys)
    got = {(t.file, t.start): (t.frames, t.positions, t.span) for t in tasks}
    assert got == {(0, 0): ((2, 3, 10, 11), (0, 1), 12), (0, 12): ((12, 13), (0,), 2),
                   (1, 10): ((12, 13), (2,), 4), (0, 24): ((25,), (3,), 2)}
    assert [t.span for t in tasks] == sorted((t.span for t in tasks), reverse=True)
    assert list(tasks[0].run) == list(range(12))          # one contiguous run from the keyframe


def test_k_stand_in_decoders_equal_the_straightforward_path_and_overlap_windows(files):
    """K = 3 stand-in decoders, GOP tasks: the same batches as one decoder with a call a sample;
    the frames decoded are the GOP runs worked out here (fewer a sample than the per-sample
    path's); the second window is submitted with the first and starts decoding before the
    first is taken; several tasks run at once."""
    infos = [probe(f) for f in files]
    n = sum(i.frames - 5 + 1 for i in infos)              # length 3, step 2: span 5
    order = torch.randperm(n, generator=torch.Generator().manual_seed(11)).tolist()[:40]
    params = {"files": files, "length": 3, "step": 2, "samples": order, "batch": 4, "seed": 2, "decode": "cpu",
              "outputs": {"a": {"random_crop": [64, 48], "random_flip": True}, "b": {"index_map": [-1, 0, -1]}}}
    straight, _, plain = batches_of(Clips, {**params, "decoders": 1, "group": False})
    got, times, node = batches_of(TracedClips, {**params, "decoders": 3})
    assert len(got) == len(straight) == 10
    for g, s in zip(got, straight):
        assert torch.equal(g["index"], s["index"])
        assert torch.equal(g["a"], s["a"]) and torch.equal(g["b"], s["b"])
    window = 4 + 2 * 3
    assert node.window == window
    keys = [keyframe_indices(i) for i in infos]
    assert node.decoded_frames == expected_frames(order, node.index, keys, window)
    alone = sum(f[-1] - key_at_or_before(keys[file], f[0]) + 1 for file, f in map(node.index.frames, order))
    assert plain.decoded_frames == alone                        # a sample alone: from its keyframe
    ran = sum(v.decoded for v in node.opened)                   # frames out of FFmpeg, B-frame delay and all
    ran_alone = sum(v.decoded for v in plain.videos.values())   # (alone: from the keyframe, each sample)
    print(f"frames a sample: GOP tasks {node.decoded_frames / len(order):.2f} planned, {ran / len(order):.2f} "
          f"decoded; a call a sample {alone / len(order):.2f} planned, {ran_alone / len(order):.2f} decoded")
    assert ran < 0.8 * ran_alone
    assert node.windows_after_first == HELD_WINDOWS                 # the next window went in with the first
    first_of_next = min(t0 for t0, _, pos in node.trace if min(pos) >= window)
    window0_taken = times[(window - 1) // 4]                        # the batch holding window 0's last sample
    assert first_of_next < window0_taken
    assert node.most_at_once >= 2


def test_held_samples_stay_within_the_cap(files):
    """However far the decoders get, no more than HELD_WINDOWS windows are submitted and not taken."""
    n = probe(files[0]).frames - 2
    params = {"files": [files[0]], "length": 3, "samples": list(range(n))[::-1], "batch": 2, "decode": "cpu",
              "decoders": 2, "ahead": 5}
    with NodeHarness(TracedClips, params) as h:
        node = h.node
        for _ in range(6):
            h.process()
            time.sleep(0.05)                                     # let the decoders run ahead
            assert node.submitted - node.taken <= HELD_WINDOWS * 5
            assert len(node.jobs) == node.submitted - node.taken
        assert node.submitted >= node.taken + 5                 # and they did run ahead


def stand_in_nvdec(path, decoders, convert_whole=False):
    """capture.clips on ``NvdecVideo`` over ``Lookahead`` (a stand-in for PyNvVideoCodec on
    FFmpeg's frames of ``path``, seeking only after a gap), on the CPU; ``convert_whole``:
    every frame converted to RGB whole (``crop_before_convert`` off)."""
    for table in (nvdec._OFFSETS, nvdec._LEADING, nvdec._CPU_TOLD, nvdec._TOLD):
        table.clear()
    info, ref = probe(path), decoded(path)

    class StandInNvdecClips(Clips):
        crop_before_convert = not convert_whole

        def _wants_gpu(self):
            return True

        def _new(self, file):
            d = Lookahead(self.paths[file], ref, "gaps")
            decoders.append(d)
            return on_cpu(info, d, leading=True)

        def _video(self, file):
            if file not in self.videos:
                self.videos[file] = self._new(file)
            return self.videos[file]

        def _open_video(self, file):
            return self._new(file)

    return StandInNvdecClips


def test_nvdec_tasks_ask_for_contiguous_runs_from_keyframes_and_equal_the_per_sample_path(files):
    """The NVDEC branch (``NvdecVideo`` on the CPU, ``Lookahead`` standing in for PyNvVideoCodec,
    seeking only after a gap): every call a task makes is one unbroken run starting at a
    keyframe, at most one seek a task, and the batches equal those of a call a sample."""
    path = files[0]
    info = probe(path)
    decoders: list[Lookahead] = []
    StandInNvdecClips = stand_in_nvdec(path, decoders)
    order = torch.randperm(info.frames - 4, generator=torch.Generator().manual_seed(5)).tolist()[:16]
    params = {"files": [path], "length": 3, "step": 2, "samples": order, "batch": 4, "seed": 4,
              "outputs": {"x": {"random_crop": [64, 48], "random_flip": True}}}
    grouped, _, node = batches_of(StandInNvdecClips, {**params, "decoders": 2})
    calls_grouped = [c for d in decoders for c in d.calls if c != [0]]   # less frame 0 (the pts offset)
    seeks = sum(d.seeks for d in decoders)
    decoders.clear()
    alone, _, _ = batches_of(StandInNvdecClips, {**params, "decoders": 1, "group": False})
    keys = set(keyframe_indices(info))
    assert node.decoder == "nvdec" and node.decode_calls == len(calls_grouped)
    for call in calls_grouped:
        assert call == list(range(call[0], call[-1] + 1)) and call[0] in keys, call
    assert seeks <= node.decode_calls + 2                       # one a task (and frame 0 a decoder)
    for g, a in zip(grouped, alone):
        assert torch.equal(g["index"], a["index"]) and torch.equal(g["x"], a["x"])
    assert len(grouped) == len(alone) == 4


OUTPUTS = {
    "cuts": {"in": {"random_crop": [40, 30], "random_flip": True, "crop_first": True, "scale_factor": 0.5},
             "mid": {"random_crop": [40, 30], "random_flip": True, "crop_first": True, "index_map": [-1, 0, -1]},
             "fixed": {"crop": [33, 17, 21, 9], "dtype": "uint8"}},
    "odd": {"a": {"random_crop": [37, 23], "random_flip": True}, "b": {"random_crop": [12, 50], "crop_first": True,
                                                                        "scale": [6, 25], "layout": "BCTHW"}},
    "whole": {"a": {"random_crop": [40, 30]}, "small": {"scale_factor": 0.5, "dtype": "half"}},
}


@pytest.mark.parametrize("case", OUTPUTS)
def test_converting_only_the_crops_equals_converting_whole_frames(files, case, monkeypatch):
    """NVDEC's NV12 kept and only each sample's crops converted (cut at even places, the draws
    shifted into the cut) gives the very values of whole frames converted, then processed:
    random crops and flips, fixed crops, odd sizes and origins, and an output that needs the
    whole frame (the union is then the frame)."""
    path = files[0]
    order = torch.randperm(probe(path).frames - 4, generator=torch.Generator().manual_seed(8)).tolist()[:12]
    params = {"files": [path], "length": 3, "step": 2, "samples": order, "batch": 4, "seed": 6, "decoders": 2,
              "outputs": OUTPUTS[case]}
    import flowml_av.clips as clips

    widths = []
    convert = clips.nv12_to_rgb
    monkeypatch.setattr(clips, "nv12_to_rgb", lambda y, *a: widths.append(y.shape[-1]) or convert(y, *a))
    cut, _, node = batches_of(stand_in_nvdec(path, []), params)
    monkeypatch.undo()
    assert widths and (max(widths) < 178) == (case != "whole"), widths   # only the crops were converted
    whole, _, _ = batches_of(stand_in_nvdec(path, [], convert_whole=True), params)
    assert node.decoder == "nvdec" and len(cut) == len(whole) == 3
    for c, w in zip(cut, whole):
        for name in (*OUTPUTS[case], "index"):
            assert c[name].shape == w[name].shape and torch.equal(c[name], w[name]), (case, name)


def test_more_files_than_a_thread_keeps_open_give_the_same_batches(files, tmp_path):
    """Six files (two copies each of three names' content) with K = 2: threads close and reopen
    decoders (FILES_PER_DECODER), pick tasks of files they have open first; the batches are the
    straightforward path's."""
    import shutil

    from flowml_av.clips import FILES_PER_DECODER

    paths = []
    for k in range(6):
        dst = tmp_path / f"c{k}.mp4"
        shutil.copyfile(files[k % 2], dst)
        paths.append(str(dst))
    opened = []

    class Counting(TracedClips):
        def _open_video(self, file):
            opened.append(file)
            return super()._open_video(file)

    n = sum(probe(p).frames - 2 for p in paths)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(3)).tolist()[:36]
    params = {"files": paths, "length": 3, "samples": order, "batch": 6, "seed": 1, "decode": "cpu",
              "outputs": {"x": {"random_crop": [32, 32], "random_flip": True}}}
    straight, _, _ = batches_of(Clips, {**params, "decoders": 1, "group": False})
    got, _, node = batches_of(Counting, {**params, "decoders": 2})
    assert len(got) == len(straight) == 6
    assert all(torch.equal(g["x"], s["x"]) and torch.equal(g["index"], s["index"]) for g, s in zip(got, straight))
    assert len(set(opened)) == 6 and FILES_PER_DECODER < 6
    print(f"{len(opened)} decoders opened for {node.decode_calls} tasks over 6 files, 2 threads")
