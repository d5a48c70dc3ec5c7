"""capture.clips' grouping of samples that share GOPs (``grouping.py``): the grouping rule on
its own, then the node and the loader on the CPU decoder (PyAV) with ``group`` on and off:
the batches must be *equal* (the same decoded frames, the same random draws, the same
order), with fewer decoder calls and fewer frames decoded when grouped."""

from __future__ import annotations

import pytest
import torch

from flowml import EndOfStream
from flowml.testing import NodeHarness
from flowml_av.clips import Clips
from flowml_av.grouping import Sample, group_samples, key_at_or_before, one_each
from flowml_av.parallel import keyframe_indices
from flowml_av.probe import probe

from av_test_videos import video

KEYS = [[0, 12, 24, 36], [0, 10, 20]]


def s(position, file, first, length=3):
    return Sample(position, file, tuple(range(first, first + length)))


def test_samples_whose_decode_ranges_share_gops_are_one_group_and_others_are_not():
    samples = [s(0, 0, 30), s(1, 0, 2), s(2, 0, 5), s(3, 1, 4), s(4, 0, 14), s(5, 0, 25), s(6, 1, 22)]
    groups = group_samples(samples, KEYS)
    got = {tuple(x.position for x in g.samples): (g.file, g.frames) for g in groups}
    # file 0: 2-4 and 5-7 decode from key 0; 14-16 starts at key 12 > 7 + 1: a new group; 25-27
    # (key 24) after 16: new; 30-32 (key 24) at or before 27 + 1: joins it
    assert got == {(1, 2): (0, (2, 3, 4, 5, 6, 7)), (4,): (0, (14, 15, 16)),
                   (5, 0): (0, (25, 26, 27, 30, 31, 32)), (3,): (1, (4, 5, 6)), (6,): (1, (22, 23, 24))}
    assert [g.first for g in groups] == sorted(g.first for g in groups)   # needed first, decoded first
    assert sorted(x.position for g in groups for x in g.samples) == list(range(7))


def test_a_sample_starting_right_after_a_group_joins_it_and_the_union_is_capped():
    keys = [[0, 8, 16, 24]]
    touching = group_samples([s(0, 0, 0, 8), s(1, 0, 8, 4)], keys)    # key 8 = last 7 + 1: decode on
    assert len(touching) == 1 and touching[0].frames == tuple(range(12))
    overlapping = [s(k, 0, k, 5) for k in range(20)]                  # windows 0-4, 1-5, ... 19-23
    capped = group_samples(overlapping, keys, max_frames=10)
    assert all(len(g.frames) <= 10 for g in capped) and len(capped) > 1
    assert sorted(x.position for g in capped for x in g.samples) == list(range(20))
    with pytest.raises(ValueError, match="max_frames"):
        group_samples(overlapping, keys, max_frames=0)


def test_one_each_is_the_ungrouped_path_and_key_lookup_takes_the_last_at_or_before():
    samples = [s(0, 0, 2), s(1, 0, 3)]
    assert [g.frames for g in one_each(samples)] == [(2, 3, 4), (3, 4, 5)]
    assert key_at_or_before([0, 12, 24], 12) == 12 and key_at_or_before([0, 12, 24], 11) == 0
    assert key_at_or_before([5], 2) == 0


FILES = ["h264_178x98.mp4", "hevc_178x98.mp4"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("videos")
    return [str(video(name, tmp)) for name in FILES]


def run(params):
    """Every batch of a capture.clips node, and its decode counters (calls, frames decoded)."""
    batches = []
    with NodeHarness(Clips, params) as h:
        while True:
            try:
                batches.append(h.process())
            except EndOfStream:
                break
        node = h.node
        videos = list(node.videos.values()) + list(getattr(node, "opened", []))
        decoded = sum(v.decoded for v in videos)
        return batches, node.decode_calls, decoded


@pytest.mark.parametrize("decoders, ahead", [(1, None), (3, None), (3, 30)])
def test_grouped_batches_equal_the_per_sample_path_with_fewer_calls_and_frames(files, decoders, ahead):
    lengths = [probe(f).frames for f in files]
    n = sum(k - 5 + 1 for k in lengths)                       # length 3, step 2: span 5
    order = torch.randperm(n, generator=torch.Generator().manual_seed(4)).tolist()[:48]
    params = {"files": files, "length": 3, "step": 2, "samples": order, "batch": 6, "seed": 9,
              "decoders": decoders, "decode": "cpu",
              "outputs": {"a": {"random_crop": [64, 48], "random_flip": True},
                          "b": {"index_map": [-1, 0, -1], "dtype": "uint8"}}}
    grouped, calls, decoded = run({**params, "ahead": ahead} if ahead else params)
    alone, calls_alone, decoded_alone = run({**params, "group": False})
    assert len(grouped) == len(alone) == 8
    for g, a in zip(grouped, alone):
        assert g["index"].tolist() == a["index"].tolist()
        for name in ("a", "b"):
            assert torch.equal(g[name], a[name]), name             # the same frames, draws, order
    assert torch.cat([b["index"] for b in grouped]).tolist() == order
    assert calls_alone == 48 and calls < calls_alone
    assert decoded < decoded_alone, (decoded, decoded_alone)


def test_grouped_samples_use_the_frames_of_their_own_windows(files):
    """Samples whose frames interleave in the union (step 2, starts one apart) get their own."""
    keys = keyframe_indices(probe(files[0]))
    first = keys[1]
    order = [first + 3, first, first + 1, first + 2]             # one file: sample k starts at frame k
    params = {"files": [files[0]], "length": 3, "step": 2, "samples": order, "batch": 4, "decode": "cpu"}
    (batch,), calls, _ = run(params)
    (alone,), _, _ = run({**params, "group": False})
    assert calls == 1 and torch.equal(batch["frames"], alone["frames"])
    assert not torch.equal(batch["frames"][0], batch["frames"][1])


def test_the_loader_gives_the_same_batches_grouped_or_not(files):
    from flowml.data import VideoDataset, VideoLoader

    data = VideoDataset(files, 4, processing={"x": {"random_crop": [32, 32], "dtype": "uint8"}})
    got = {}
    for group in (True, False):
        loader = VideoLoader(data, batch_size=5, shuffle=True, seed=1, device="cpu", decode="cpu",
                             decoders=2, group=group)
        got[group] = list(loader)
    assert len(got[True]) == len(data) // 5
    for g, a in zip(got[True], got[False]):
        assert torch.equal(g["index"], a["index"]) and torch.equal(g["x"], a["x"])
