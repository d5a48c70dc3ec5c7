"""Open GOPs: leading pictures (HEVC's RASL frames: stored after a CRA keyframe, shown before
it, predicted from the GOP before it) on the CPU. ``probe`` finds them in the packet order;
PyAV started at a CRA drops them, and ``CpuVideo`` still gives each exactly; NvdecVideo asks
a stand-in for PyNvVideoCodec (``Lookahead``: it finds a frame's keyframe by the frame's
position in decode order, as PyNvVideoCodec does, so a leading picture asked for after a
seek comes from its own CRA, decoded without its references, with the right pts: the H200
failures of 2026-12-03, frame 7 of hevc_322x182 and frame 9 of hevc_210x146) from calls
that run from the keyframe before the CRA, and checks it once a file against FFmpeg's."""

from __future__ import annotations

import av
import pytest
import torch

from flowml_av import nvdec
from flowml_av.colour import planes
from flowml_av.cpudecode import CpuVideo
from flowml_av.grouping import Sample, group_samples, key_at_or_before
from flowml_av.parallel import key_pieces, keyframe_indices, leading_indices
from flowml_av.probe import probe

from av_test_videos import video
from test_av_nvdec_pts import Frame, on_cpu

HEVC = ["hevc_210x146.mp4", "hevc_322x182.mp4"]
RASL = (8, 9)   # HEVC NAL unit types RASL_N, RASL_R
CRA = 21


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("videos")
    return {name: video(name, tmp) for name in [*HEVC, "h264_210x146.mp4"]}


@pytest.fixture(autouse=True)
def fresh():
    for table in (nvdec._OFFSETS, nvdec._LEADING, nvdec._CPU_TOLD, nvdec._TOLD):
        table.clear()
    yield
    nvdec._OFFSETS.clear(), nvdec._LEADING.clear()


def nal_types(packet) -> list[int]:
    """The VCL NAL unit types of an MP4 (length-prefixed, hvcC) HEVC packet."""
    data, out, at = bytes(packet), [], 0
    while at + 5 <= len(data):
        size = int.from_bytes(data[at:at + 4], "big")
        kind = (data[at + 4] >> 1) & 0x3F
        if kind < 32:
            out.append(kind)
        at += 4 + size
    return out


def decoded(path):
    """Every frame as (Y, CbCr interleaved, pts) by one PyAV decode of the whole file."""
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            y, u, v = (torch.from_numpy(p.copy()) for p in planes(f))
            out.append((y, torch.stack([u, v], -1), f.pts))
    return out


@pytest.mark.parametrize("name", HEVC)
def test_probe_finds_the_rasl_frames_by_packet_order_and_the_h200_failures_are_among_them(files, name):
    info = probe(files[name])
    index_of = {p: k for k, p in enumerate(info.pts)}
    with av.open(str(files[name])) as c:
        kinds = {index_of[p.pts]: nal_types(p)[0] for p in c.demux(video=0) if p.size}
    rasl = sorted(k for k, t in kinds.items() if t in RASL)
    leading = leading_indices(info)
    assert sorted(leading) == rasl and rasl                      # every RASL frame, nothing else
    assert all(kinds[key] == CRA and key > i for i, key in leading.items())
    assert {"hevc_322x182.mp4": 7, "hevc_210x146.mp4": 9}[name] in leading
    assert leading_indices(probe(files["h264_210x146.mp4"])) == {}  # x264's GOPs are closed


@pytest.mark.parametrize("name", HEVC)
def test_pyav_started_at_a_cra_drops_its_leading_pictures_and_cpu_video_still_gives_them(files, name):
    info, ref = probe(files[name]), decoded(files[name])
    leading = leading_indices(info)
    for i, key in leading.items():
        with av.open(str(files[name])) as c:
            s = c.streams.video[0]
            c.seek(info.pts[key], backward=True, any_frame=False, stream=s)
            first = [f.pts for _, f in zip(range(3), c.decode(s))]
        assert info.pts[i] not in first and first[0] == info.pts[key]   # a decode from the CRA lacks it
        assert key_at_or_before(keyframe_indices(info), i) < key       # the planned start is before it
        for indices in ([i], [i, key], [i - 1, i, key + 1]):            # alone, and first in a call
            cpu = CpuVideo(str(files[name]), "cpu")
            rgb = cpu.frames(indices)
            with av.open(str(files[name])) as c:
                want = [torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1) for f in c.decode(video=0)]
            for k, j in enumerate(indices):  # the same rgb24 levels (its float is x * (1/255))
                assert torch.equal((rgb[k] * 255).round().to(torch.uint8), want[j]), (name, indices, j)
            cpu.close()


class Lookahead:
    """PyNvVideoCodec's frame lookup on FFmpeg's frames of a real file: a frame's keyframe is
    the last keyframe at or before the frame's *decode-order* position (``land``), and a seek
    to it happens for the first frame asked for, a frame at or before the last one, and (``h200``)
    any frame whose keyframe so found differs from the last one's, else (``gaps``) only such a
    frame after a gap. Frames shown before the keyframe a seek landed on (leading pictures of
    that CRA) come out wrong (Y + 1) with their own pts, as NVDEC decodes them without the GOP
    before; every other frame is FFmpeg's."""

    def __init__(self, path, ref, mode: str):
        info = probe(path)
        index_of = {p: k for k, p in enumerate(info.pts)}
        with av.open(str(path)) as c:
            order = [(index_of[p.pts], p.is_keyframe) for p in c.demux(video=0) if p.size]
        self.land, key = [], 0
        for display, is_key in order:           # position t in decode order -> its keyframe
            key = display if is_key else key
            self.land.append(key)
        self.good = [Frame(torch.cat([y, uv.reshape(uv.shape[0], -1)]), p) for y, uv, p in ref]
        self.bad = [Frame(torch.cat([(y.int() + 1).clamp(max=255).to(torch.uint8), uv.reshape(uv.shape[0], -1)]), p)
                    for y, uv, p in ref]
        self.mode, self.prev, self.start, self.calls, self.seeks = mode, None, 0, [], 0

    def get_batch_frames_by_index(self, indices):
        self.calls.append(list(indices))
        out = []
        for t in indices:
            moved = self.prev is not None and self.land[t] != self.land[self.prev]
            if self.prev is None or t <= self.prev or (moved and (self.mode == "h200" or t > self.prev + 1)):
                self.start, self.seeks = self.land[t], self.seeks + 1
            out.append(self.bad[t] if t < self.start else self.good[t])
            self.prev = t
        return out


def assert_exact(nv, ref, indices):
    y, uv = nv.nv12(indices)
    for k, i in enumerate(indices):
        assert torch.equal(y[k], ref[i][0]), f"frame {i}: Y"
        assert torch.equal(uv[k], ref[i][1]), f"frame {i}: CbCr"


def h200_requests(info):
    """The H200 run's requests: the planes test's frames, keyframe pieces of 8 and 24 from
    frame 3, and capture.clips' samples (length 3, step 2) one call each and grouped."""
    n, keys = info.frames, keyframe_indices(info)
    out = [[0, 7, n - 1, 3, 4, 5, 21, 20, 1]]
    for piece in (8, 24):
        out += key_pieces(keys, range(3, n), piece)
    samples = [Sample(k, 0, tuple(range(s, s + 5, 2))) for k, s in enumerate([30, 2, 17, 0, 9, 25]) if s + 4 < n]
    out += [list(s.frames) for s in samples]
    out += [list(g.frames) for g in group_samples(samples, [keys])]
    return out


@pytest.mark.parametrize("name", HEVC)
def test_the_stand_in_gives_the_h200s_wrong_frames_when_leading_pictures_are_not_planned_for(files, name):
    """Without the leading pictures told to NvdecVideo (the calls as they were), the stand-in
    gives frame 7 / 9 wrong with the right pts: nothing in the pts check sees it."""
    info, ref = probe(files[name]), decoded(files[name])
    nv = on_cpu(info, Lookahead(files[name], ref, "h200"))       # leading=False: info.leading empty
    y, _ = nv.nv12([0, 1, 3, 4, 5, 7] if name == "hevc_322x182.mp4" else list(range(3, 10)))
    last = 7 if name == "hevc_322x182.mp4" else 9
    assert not torch.equal(y[-1], ref[last][0]) and nv.misplaced == 0 and nv.cpu_frames == 0


@pytest.mark.parametrize("name", HEVC)
def test_leading_pictures_come_from_calls_that_run_from_the_keyframe_before_their_cra(files, name):
    """A decoder that seeks only after gaps gives them right that way: all frames equal
    FFmpeg's, nothing on the CPU, the check once a file passed, and every call that gives a
    leading picture runs frame after frame from a keyframe before its CRA."""
    info, ref = probe(files[name]), decoded(files[name])
    decoder = Lookahead(files[name], ref, "gaps")
    nv = on_cpu(info, decoder, leading=True)
    leading, keys = leading_indices(info), keyframe_indices(info)
    for indices in h200_requests(info):
        assert_exact(nv, ref, indices)
    assert nv.cpu_frames == 0 and nv.leading_frames > 0
    assert nv.leading_checked is not None and nv.leading_checked[1] is True
    assert list(nvdec._LEADING.values()) == [nvdec.CHECKS]                # trusted after CHECKS equal ones
    for n, call in enumerate(decoder.calls):
        for i in set(call) & set(leading):
            assert runs_from_a_keyframe_before(decoder.calls, n, i, keys, leading[i]), (call, i)


def runs_from_a_keyframe_before(calls, n, i, keys, cra) -> bool:
    """Whether call ``n`` (with the calls it continues frame after frame) asked for every frame
    from some keyframe before ``cra`` through ``i``, in one unbroken run."""
    seq = list(calls[n][:calls[n].index(i) + 1])
    while n > 0 and calls[n - 1] and seq[0] == calls[n - 1][-1] + 1:
        n -= 1
        seq = calls[n] + seq
    for key in (k for k in keys if k < cra):
        run = list(range(key, i + 1))
        if any(seq[a:a + len(run)] == run for a in range(len(seq))):
            return True
    return False


@pytest.mark.parametrize("name", HEVC)
def test_a_decoder_that_cannot_give_leading_pictures_is_caught_once_and_the_cpu_gives_them(files, name, caplog):
    """The H200's decoder (a seek whenever the decode-order keyframe changes: no call gives a
    leading picture right) fails the check once a file, logged; from then on leading pictures
    come from the CPU, every other frame from the decoder; all frames equal FFmpeg's."""
    info, ref = probe(files[name]), decoded(files[name])
    decoder = Lookahead(files[name], ref, "h200")
    nv = on_cpu(info, decoder, leading=True)
    leading = leading_indices(info)
    wanted = set()
    for indices in h200_requests(info):
        assert_exact(nv, ref, indices)
        wanted |= set(indices)
    assert nv.leading_checked is not None and nv.leading_checked[1] is False
    assert nvdec._LEADING and list(nvdec._LEADING.values()) == [False]
    said = [r for r in caplog.records if "NVDEC decoded leading picture" in r.getMessage()]
    assert len(said) == 1 and name in said[0].getMessage()
    lead_wanted = len(wanted & set(leading))
    assert lead_wanted <= nv.cpu_frames < len(wanted)                 # the rest stayed on the decoder
    calls = len(decoder.calls)
    other = on_cpu(info, Lookahead(files[name], ref, "h200"), leading=True)   # a second decoder of the file
    assert_exact(other, ref, sorted(leading))
    assert other.cpu_frames == len(leading) and other.decoder.calls == []  # known: no NVDEC call for them
    assert calls == len(decoder.calls)


def test_grouped_decode_ranges_of_samples_at_leading_pictures_start_before_their_cra(files):
    info = probe(files["hevc_210x146.mp4"])
    keys, leading = keyframe_indices(info), leading_indices(info)
    for i, key in leading.items():
        (group,) = group_samples([Sample(0, 0, (i, i + 1, i + 2))], [keys])
        assert key_at_or_before(keys, group.frames[0]) < key          # from the GOP before the CRA
        before = Sample(1, 0, (key - 4,))                             # a sample in that GOP joins it
        assert len(group_samples([Sample(0, 0, (i, i + 1)), before], [keys])) == 1


def test_a_call_takes_a_few_frames_more_to_run_unbroken_to_a_leading_picture_else_asks_apart(files, monkeypatch):
    """hevc_322x182: frame 7 leads CRA 8. Asked with 0..5 but not 6, the call takes 2 and 6 as
    well (within ``FILL``) and gives 7 itself; with no room to fill, 7 comes from a call of
    its own from keyframe 0, and frame 5 stays in the first."""
    path = files["hevc_322x182.mp4"]
    info, ref = probe(path), decoded(path)
    assert leading_indices(info)[7] == 8
    decoder = Lookahead(path, ref, "gaps")
    nv = on_cpu(info, decoder, leading=True)
    assert_exact(nv, ref, [0, 1, 3, 4, 5, 7])
    assert decoder.calls == [[0], list(range(0, 8))] and nv.cpu_frames == 0
    monkeypatch.setattr(nvdec, "FILL", 0)
    nvdec._LEADING.clear()
    decoder = Lookahead(path, ref, "gaps")
    nv = on_cpu(info, decoder, leading=True)
    assert_exact(nv, ref, [5, 7])
    assert decoder.calls == [[5], list(range(0, 8))] and nv.cpu_frames == 0


@pytest.mark.parametrize("mode", ["gaps", "h200"])
@pytest.mark.parametrize("piece", [8, 24])
def test_capture_videos_keyframe_pieces_on_two_stand_in_decoders_give_every_frame_exactly(files, mode, piece):
    """capture.video's NVDEC path (``ParallelFrames``: segments from keyframes, ``key_pieces``
    calls) over hevc_210x146 on two stand-in decoders: every frame in order and equal to
    FFmpeg's; the CPU decodes leading pictures only, and only where the decoder fails them."""
    from flowml_av.parallel import ParallelFrames, segments

    path = files["hevc_210x146.mp4"]
    info, ref = probe(path), decoded(path)
    videos = []

    def open_video():
        videos.append(on_cpu(info, Lookahead(path, ref, mode), leading=True))
        return videos[-1]

    frames = ParallelFrames(open_video, segments(info, 3, min_frames=10), 2, lambda v, k: v.nv12(k),
                            finish=lambda planes_: planes_[0], piece=piece, keys=keyframe_indices(info))
    got = list(frames)
    frames.close()
    assert [k for k, _ in got] == list(range(3, info.frames))
    for k, y in got:
        assert torch.equal(y[0], ref[k][0]), f"frame {k}"
    cpu = sum(v.cpu_frames for v in videos)
    leading = set(leading_indices(info))
    assert cpu == 0 if mode == "gaps" else 0 < cpu <= len(leading)
