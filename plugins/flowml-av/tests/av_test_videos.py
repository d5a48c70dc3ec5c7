"""Test videos from FFmpeg's testsrc2 source: the files the frame-exact and GPU tests read.

``scripts/make-test-videos.sh DIR`` makes them; a test calls ``video(name, tmp)``, which takes
the file from ``FLOWML_TEST_VIDEOS`` where that is set, else makes it under ``tmp``. Files are
made by the ``ffmpeg`` CLI where there is one, else by PyAV (``av``'s own FFmpeg: its lavfi
``testsrc2``, libx264 / libx265 with the same options), so a machine without the CLI (the GPU
machine) makes them itself.

Sizes are not multiples of 8 or 16 (4:2:0 needs even ones: libx264 refuses odd widths),
GOPs are short and B-frames on, so windows cross keyframes and reordered frames; x265's
GOPs are open (frames before a CRA in display order come after it in the file). NVDEC has
minimum sizes per codec (``flowml_av.nvdec.MIN_SIZE``: HEVC 144x144): the NVDEC tests read
the 210x146 and 322x182 files; ``hevc_178x98`` is below HEVC's minimum, for the CPU fallback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

RATE = 25


@dataclass(frozen=True)
class Spec:
    codec: str            # libx264 or libx265
    width: int
    height: int
    frames: int
    crf: int
    gop: int = 0          # libx264: -g
    x265: str = ""        # libx265: -x265-params (keyint, bframes, open-gop)

    def options(self) -> dict[str, str]:
        """Encoder options, as ffmpeg's -preset/-crf/-bf/-g/-x265-params give them."""
        if self.codec == "libx264":
            return {"preset": "veryfast", "crf": str(self.crf), "bf": "2", "g": str(self.gop)}
        return {"preset": "veryfast", "crf": str(self.crf), "x265-params": self.x265}

    def cli(self) -> list[str]:
        opts = ["-c:v", self.codec, "-pix_fmt", "yuv420p", "-frames:v", str(self.frames)]
        for key, value in self.options().items():
            opts += [f"-{key}", value]
        return opts + (["-tag:v", "hvc1"] if self.codec == "libx265" else [])


HEVC_OPEN = "log-level=error:keyint=10:min-keyint=10:bframes=3:open-gop=1"
HEVC = "log-level=error:keyint=8:min-keyint=8:bframes=2"
VIDEOS: dict[str, Spec] = {
    "h264_178x98.mp4": Spec("libx264", 178, 98, 48, 20, gop=12),
    "hevc_178x98.mp4": Spec("libx265", 178, 98, 40, 22, x265=HEVC_OPEN),
    "h264_210x146.mp4": Spec("libx264", 210, 146, 48, 20, gop=12),
    "hevc_210x146.mp4": Spec("libx265", 210, 146, 40, 22, x265=HEVC_OPEN),
    "h264_322x182.mp4": Spec("libx264", 322, 182, 30, 20, gop=9),
    "hevc_322x182.mp4": Spec("libx265", 322, 182, 30, 22, x265=HEVC),
    "h264_100f.mp4": Spec("libx264", 64, 48, 100, 30, gop=25),
    "h264_1080p.mp4": Spec("libx264", 1920, 1080, 240, 28, gop=12),
}


def make(name: str, folder: Path) -> Path:
    """Make ``name`` in ``folder`` (kept if it is already there): ffmpeg CLI, else PyAV."""
    path = folder / name
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    spec = VIDEOS[name]
    if shutil.which("ffmpeg") is not None:
        cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
               f"testsrc2=size={spec.width}x{spec.height}:rate={RATE}", *spec.cli(), str(path)]
        subprocess.run(cmd, check=True)
    else:
        encode_with_pyav(spec, path)
    return path


def encode_with_pyav(spec: Spec, path: Path) -> None:
    """``spec`` encoded by PyAV's FFmpeg from lavfi's testsrc2 (written to a temporary name first)."""
    import av
    from av.video.frame import PictureType

    part = path.with_name(path.name + ".part.mp4")
    source = av.open(f"testsrc2=size={spec.width}x{spec.height}:rate={RATE}", format="lavfi")
    try:
        with av.open(str(part), "w") as out:
            options = spec.options()
            gop, bframes = int(options.pop("g", 0)), int(options.pop("bf", 0))
            stream = out.add_stream(spec.codec, rate=RATE, options=options)
            stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
            if gop:  # AVCodecContext's own fields (-g, -bf), not the encoder's private options
                stream.codec_context.gop_size, stream.codec_context.max_b_frames = gop, bframes
            if spec.codec == "libx265":
                stream.codec_tag = "hvc1"
            for k, frame in enumerate(source.decode(video=0)):
                if k == spec.frames:
                    break
                frame = frame.reformat(format="yuv420p")
                frame.pict_type = PictureType.NONE  # lavfi marks every frame I: the encoder would obey
                frame.pts, frame.time_base = k, Fraction(1, RATE)
                out.mux(stream.encode(frame))
            out.mux(stream.encode())
    finally:
        source.close()
    os.replace(part, path)


def video(name: str, tmp: Path) -> Path:
    """The test file ``name``: from ``FLOWML_TEST_VIDEOS`` where set, else made under ``tmp``."""
    folder = os.environ.get("FLOWML_TEST_VIDEOS")
    if folder:
        path = Path(folder) / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: FLOWML_TEST_VIDEOS has no {name}; make it with "
                                    "scripts/make-test-videos.sh")
        return path
    return make(name, tmp)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".videos")
    for n in (sys.argv[2:] or VIDEOS):
        print(make(n, out), f"{(out / n).stat().st_size / 1e6:.2f} MB")
