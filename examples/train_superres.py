"""Train a small video super-resolution net with flowml as the data loader (NVVL's example).

    python examples/train_superres.py [VIDEO ...] [--steps 20] [--batch 4] [--device cpu|cuda]
                                      [--clip-frames 60]

Each sample is 5 consecutive frames of a video; one decoded sequence gives two outputs, as
in NVVL's pytorch_superres example: ``input``, the 5 frames cut at a random place (and
randomly flipped) and scaled to a quarter, and ``target``, the middle frame of the same cut
at full size. The outputs of a sequence share its random draws, so with the same
``random_crop`` and ``crop_first`` they cut the same place and flip together.
Without VIDEO, two small clips are made with flowml-av's encoder, so it runs anywhere
(CPU: well under a minute). On a GPU with PyNvVideoCodec the frames are decoded by NVDEC.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from flowml.data import VideoDataset, VideoLoader

LENGTH = 5


class VSR(torch.nn.Module):
    """(B, 5, 3, h, w) low-res frames -> (B, 3, 4h, 4w): the middle frame, four times the size."""

    def __init__(self, features: int = 32):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3 * LENGTH, features, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(features, features, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(features, 3 * 16, 3, padding=1), torch.nn.PixelShuffle(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        base = torch.nn.functional.interpolate(x[:, t // 2], scale_factor=4, mode="bilinear")
        return base + self.body(x.reshape(b, t * c, h, w))


def make_clips(folder: Path, n: int = 2, frames: int = 60) -> list[Path]:
    """Small moving test pictures, encoded with flowml-av (libx264), for a run without videos."""
    from flowml.testing import NodeHarness
    from flowml_av.writer import VideoWriter

    paths = []
    y = torch.linspace(0, 1, 96).view(1, 1, 96, 1)
    x = torch.linspace(0, 1, 160).view(1, 1, 1, 160)
    for k in range(n):
        path = folder / f"clip{k}.mp4"
        with NodeHarness(VideoWriter, {"path": str(path), "preset": "veryfast", "keyframe_interval": 0.4}) as h:
            for f in range(frames):
                p = f / frames + k / n
                stripes = 0.5 + 0.5 * torch.sin(40 * (x + p) + 25 * y)
                h.process(image=torch.cat([stripes, (x * y + p) % 1, 1 - stripes * y], 1))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> dict:
    """Train for ``--steps`` steps; returns the losses and the rate (what the smoke test reads)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*", type=Path)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=64, help="target size (input: a quarter of it)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--decoders", type=int, default=None,
                    help="samples decoded at once (default: one a NVDEC engine, or half the cores)")
    ap.add_argument("--clip-frames", type=int, default=60, help="frames of each clip made without VIDEO")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        videos = args.videos or make_clips(Path(tmp), frames=args.clip_frames)
        c = args.crop
        cut = {"random_crop": [c, c], "random_flip": True, "crop_first": True}
        data = VideoDataset(videos, LENGTH, processing={
            "input": {**cut, "scale_factor": 0.25},                   # (B, 5, 3, c/4, c/4)
            "target": {**cut, "index_map": [-1, -1, 0, -1, -1]}})     # (B, 1, 3, c, c)
        loader = VideoLoader(data, batch_size=args.batch, shuffle=True, seed=0, device=args.device,
                             decoders=args.decoders)
        print(f"{len(data)} samples in {len(videos)} files, {len(loader)} batches an epoch, on {args.device}")
        model = VSR().to(args.device)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        step, t0, losses = 0, time.perf_counter(), []
        while step < args.steps:
            for batch in loader:
                out = model(batch["input"])
                loss = torch.nn.functional.l1_loss(out, batch["target"][:, 0])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
                step += 1
                if step % 5 == 0 or step == 1:
                    print(f"step {step:3d}  loss {loss.item():.4f}  (decoder: {loader.last_decoder})")
                if step == args.steps:
                    break
        rate = step * args.batch / (time.perf_counter() - t0)
        print(f"{step} steps, {rate:.1f} samples/s")
    return {"losses": losses, "samples_per_s": rate, "decoder": loader.last_decoder,
            "shapes": {name: tuple(t.shape) for name, t in batch.items()}}


if __name__ == "__main__":
    main()
