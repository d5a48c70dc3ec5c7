"""Which PyNvVideoCodec requests give an open GOP's leading pictures (HEVC RASL) as FFmpeg does.

A diagnostic, not a benchmark: for each leading picture of the HEVC test files (stored after
its CRA, shown before it; ``probe.leading_pictures``), a fresh ``SimpleDecoder`` is asked for
it in several shapes of ``get_batch_frames_by_index`` call, and each result's pts and planes
are compared with PyAV's decode of the whole file:

  alone      [r]                      (the seek PyNvVideoCodec makes lands on r's own CRA?)
  gap        [p, r]                   (p: the keyframe before the CRA)
  unbroken   [p, p + 1, ..., r]       (what ``NvdecVideo`` asks for: no gap, no seek expected)
  split      [p .. r - 1] then [r]    (two calls, the second continuing the first)
  nvdecvideo NvdecVideo.nv12([r])     (flowml's path: the check once a file, CPU where unequal)

Prints one line per file and shape and writes them as JSON to ``--out`` (default
$OUT/nvdec_open_gop.json). Run from the repository root on the GPU machine:
``python plugins/flowml-av/benchmarks/nvdec_open_gop.py --out $OUT/nvdec_open_gop.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import av
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from av_test_videos import video  # noqa: E402
from flowml_av import nvdec  # noqa: E402
from flowml_av.colour import planes  # noqa: E402
from flowml_av.grouping import key_at_or_before  # noqa: E402
from flowml_av.parallel import keyframe_indices, leading_indices  # noqa: E402
from flowml_av.probe import probe  # noqa: E402

FILES = ["hevc_210x146.mp4", "hevc_322x182.mp4"]


def reference(path: str) -> list[tuple[torch.Tensor, int]]:
    """Every frame's Y plane and pts, PyAV decoding the whole file."""
    with av.open(path) as c:
        return [(torch.from_numpy(planes(f)[0].copy()), f.pts) for f in c.decode(video=0)]


def fresh(path: str):
    import PyNvVideoCodec as nvc

    return nvc.SimpleDecoder(path, gpu_id=0, use_device_memory=True, output_color_type=nvc.OutputColorType.NATIVE)


def y_of(frame, h: int, w: int) -> torch.Tensor:
    t = torch.from_dlpack(frame)
    while t.ndim > 2:
        t = t[0] if t.shape[0] == 1 else t[..., 0]
    return t[:h, :w].cpu()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "nvdec_open_gop.json"))
    args = ap.parse_args()
    torch.zeros(1, device="cuda")
    folder = Path(os.environ.get("FLOWML_TEST_VIDEOS") or tempfile.mkdtemp(prefix="flowml-open-gop-"))
    rows = []
    for name in FILES:
        path = str(video(name, folder))
        info, ref = probe(path), reference(path)
        keys, leading = keyframe_indices(info), leading_indices(info)
        offset = None
        for r, cra in sorted(leading.items()):
            p = key_at_or_before(keys, r)
            shapes = {"alone": [[r]], "gap": [[p, r]], "unbroken": [list(range(p, r + 1))],
                      "split": [list(range(p, r)), [r]]}
            for shape, calls in shapes.items():
                dec = fresh(path)
                if offset is None:
                    first = dec.get_batch_frames_by_index([0])
                    offset = nvdec.frame_pts(first[0]) - info.pts[0]
                    dec = fresh(path)
                try:
                    got = None
                    for call in calls:
                        out = dec.get_batch_frames_by_index(call)
                        if r in call:
                            f = out[call.index(r)]
                            got = (nvdec.frame_pts(f) - offset, y_of(f, info.height, info.width))
                    pts_ok = got[0] == ref[r][1]
                    equal = bool(torch.equal(got[1], ref[r][0]))
                    levels = float((got[1].float() - ref[r][0].float()).abs().mean())
                    row = dict(file=name, frame=r, cra=cra, shape=shape, calls=calls, pts_right=pts_ok,
                               equal=equal, mean_abs_levels=round(levels, 3))
                except Exception as exc:  # noqa: BLE001 - a diagnostic reports what the decoder did
                    row = dict(file=name, frame=r, cra=cra, shape=shape, calls=calls, error=str(exc)[:200])
                rows.append(row)
                print(json.dumps(row))
            nvdec._LEADING.clear(), nvdec._OFFSETS.clear()
            nv = nvdec.NvdecVideo(path, "cuda")
            y, _ = nv.nv12([r])
            row = dict(file=name, frame=r, cra=cra, shape="nvdecvideo", equal=bool(torch.equal(y[0].cpu(), ref[r][0])),
                       checked=nv.leading_checked, cpu_frames=nv.cpu_frames, calls=None)
            rows.append(row)
            print(json.dumps(row))
            nv.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
