"""flowml.data: NVVL's sample index, the seeded sampler, and the loader in a training loop
(a real graph decoding ffmpeg-made files through flowml-av's capture.clips, on the CPU here;
test_video_loader_cuda below on a GPU)."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest
import torch

from flowml.data import SequenceIndex, ShuffleSampler, VideoDataset, VideoLoader
from flowml.testing import need_executables


def test_nvvl_index_two_files_of_100_frames_length_5_give_192_samples():
    index = SequenceIndex.of([100, 100], 5)
    assert len(index) == 192
    assert index.locate(0) == (0, 0) and index.locate(95) == (0, 95)
    assert index.locate(96) == (1, 0) and index.locate(191) == (1, 95)
    assert index.frames(191) == (1, [95, 96, 97, 98, 99])   # the last sequence ends on the last frame
    with pytest.raises(IndexError, match=r"sample 192 is outside 0..191"):
        index.locate(192)
    # a file shorter than a sequence gives none; step spreads a sequence out
    short = SequenceIndex.of([3, 10, 0, 7], 4, step=2)      # span 7
    assert len(short) == 0 + 4 + 0 + 1
    assert short.locate(4) == (3, 0) and short.frames(3) == (1, [3, 5, 7, 9])


def test_shuffle_sampler_is_seeded_a_permutation_and_moves_on_each_epoch():
    s = ShuffleSampler(50, seed=3)
    first, second = list(s), list(s)
    assert sorted(first) == list(range(50)) and first != list(range(50))
    assert first != second                        # the next epoch
    again = ShuffleSampler(50, seed=3)
    assert list(again) == first                   # the same seed, the same order
    again.set_epoch(1)
    assert list(again) == second
    assert list(ShuffleSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


@pytest.fixture(scope="module")
def two_files(tmp_path_factory):
    need_executables("ffmpeg", missing="the ffmpeg CLI makes the test videos (Debian: ffmpeg)")
    tmp = tmp_path_factory.mktemp("clips")
    paths = []
    for k, source in enumerate(("testsrc2", "smptehdbars")):
        path = tmp / f"v{k}.mp4"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        f"{source}=size=64x48:rate=25", "-frames:v", "100", "-c:v", "libx264",
                        "-pix_fmt", "yuv420p", "-preset", "veryfast", "-g", "25", str(path)], check=True)
        paths.append(path)
    return paths


PROCESSING = {"input": {"scale_factor": 0.5}, "target": {"index_map": [-1, -1, 0, -1, -1]}}


def test_dataset_counts_samples_as_nvvl(two_files):
    data = VideoDataset(two_files, 5, processing=PROCESSING)
    assert len(data) == 192
    assert data.locate(96) == (str(two_files[1].resolve()), [0, 1, 2, 3, 4])
    with pytest.raises(FileNotFoundError, match="no such file"):
        VideoDataset([two_files[0].parent / "missing.mp4"], 5)


class TinySR(torch.nn.Module):
    """(B, 5, 3, h, w) low-res frames -> (B, 3, 2h, 2w): the middle frame, twice the size."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(15, 24, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.Conv2d(24, 12, 3, padding=1), torch.nn.PixelShuffle(2))

    def forward(self, x):
        b, t, c, h, w = x.shape
        up = torch.nn.functional.interpolate(x[:, t // 2], scale_factor=2, mode="bilinear")
        return up + self.body(x.reshape(b, t * c, h, w))


def test_loader_feeds_a_training_loop_and_the_loss_falls(two_files):
    torch.manual_seed(0)
    data = VideoDataset(two_files, 5, processing=PROCESSING)
    loader = VideoLoader(data, batch_size=8, shuffle=True, seed=1, device="cpu")
    assert len(loader) == 24
    model = TinySR()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses, seen = [], []
    for epoch in range(2):
        for batch in loader:
            assert batch["input"].shape == (8, 5, 3, 24, 32) and batch["target"].shape == (8, 1, 3, 48, 64)
            loss = torch.nn.functional.mse_loss(model(batch["input"]), batch["target"][:, 0])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            seen += batch["index"].tolist()
    assert loader.last_decoder == "cpu"
    assert len(losses) == 48
    assert sorted(seen[:192]) == list(range(192))          # an epoch is every sample once
    assert seen[:192] != seen[192:]                        # shuffled anew the next epoch
    assert sum(losses[-8:]) / 8 < 0.7 * sum(losses[:8]) / 8


def test_loader_runs_a_bounded_number_of_batches_ahead_and_stops_on_close(two_files):
    data = VideoDataset(two_files, 5)
    loader = VideoLoader(data, batch_size=4, prefetch=2, device="cpu")
    epoch = iter(loader)
    first = next(epoch)
    assert first["frames"].shape == (4, 5, 3, 48, 64) and first["index"].tolist() == [0, 1, 2, 3]
    time.sleep(1.0)                                       # let it run ahead as far as it may
    clips = epoch.scheduler.nodes["clips"].node
    ahead = clips.pos // 4 - 1
    # the loader's queue, the ticks in flight, the clock's read-ahead (prefetch each), one being read
    assert 1 <= ahead <= 3 * 2 + 1
    epoch.close()
    assert not epoch.thread.is_alive()
    assert clips.pos < 192                                # it did not decode the epoch to the end
    for k, batch in enumerate(loader):                    # a loop left with break stops its graph
        if k == 1:
            ahead = loader._ahead.thread                  # and the next epoch's, started ahead,
            threads = [t for t in threading.enumerate()   # stops when the loader is closed
                       if t.name == "flowml.data" and t.is_alive() and t is not ahead]
            break
    del batch
    _wait_dead(threads)
    assert threads and not any(t.is_alive() for t in threads) and ahead.is_alive()
    loader.close()
    _wait_dead([ahead])
    assert not ahead.is_alive()


def _wait_dead(threads, seconds=10.0):
    deadline = time.monotonic() + seconds
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        time.sleep(0.05)


def _epoch(it):
    """An epoch's batches as (index list, frames) pairs."""
    return [(b["index"].tolist(), b["frames"]) for b in it]


def test_next_epoch_starts_ahead_and_the_batches_are_the_same(two_files):
    data = VideoDataset(two_files[:1], 5)                 # 96 samples: 12 batches of 8
    plain = VideoLoader(data, batch_size=8, shuffle=True, seed=2, device="cpu", overlap_epochs=False)
    expected = [_epoch(plain), _epoch(plain)]
    assert plain._ahead is None
    loader = VideoLoader(data, batch_size=8, shuffle=True, seed=2, device="cpu")
    first = iter(loader)
    ahead = loader._ahead                                  # epoch 1's graph, started with epoch 0
    assert ahead is not None and ahead.thread.is_alive() and ahead.order == loader.sampler.upcoming()
    got = [_epoch(first)]
    second = iter(loader)
    assert second._run is ahead                            # taken over, not started anew
    got.append(_epoch(second))
    for want, have in zip(expected, got):
        assert [i for i, _ in have] == [i for i, _ in want]
        for (_, a), (_, b) in zip(have, want):
            assert torch.equal(a, b)                       # the same crops of the same frames
    # the sampler sent back to epoch 0: the graph started ahead (epoch 3) is not the one wanted
    stale = loader._ahead
    loader.sampler.set_epoch(0)
    again = iter(loader)
    assert again._run is not stale and not stale.thread.is_alive()
    assert [i for i, _ in _epoch(again)] == [i for i, _ in expected[0]]
    last = loader._ahead
    loader.close()
    _wait_dead([last.thread])
    assert not last.thread.is_alive()
