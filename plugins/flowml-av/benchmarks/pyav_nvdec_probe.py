"""Why PyAV's NVDEC (FFmpeg's CUDA hwaccel) does not open once torch has made its CUDA context.

    FLOWML_TEST_VIDEOS=DIR python plugins/flowml-av/benchmarks/pyav_nvdec_probe.py

Prints what the CUDA driver says on this thread after torch started (the current context,
the primary context's flags) and, for FFmpeg's ``current_ctx`` and ``primary_ctx`` options,
whether a CUDA device context opens and decodes, with FFmpeg's own log lines about it.
FFmpeg (libavutil/hwcontext_cuda.c) answers ENOTSUP for ``primary_ctx`` when the primary
context is active with flags other than CU_CTX_SCHED_BLOCKING_SYNC, and EINVAL for
``current_ctx`` when no context is current on the calling thread.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path

import av
import av.logging
import torch
from av.codec.hwaccel import HWAccel


def driver_view() -> dict:
    cuda = ctypes.CDLL("libcuda.so.1")
    ctx = ctypes.c_void_p()
    flags, active = ctypes.c_uint(), ctypes.c_int()
    rc_ctx = cuda.cuCtxGetCurrent(ctypes.byref(ctx))
    rc_state = cuda.cuDevicePrimaryCtxGetState(0, ctypes.byref(flags), ctypes.byref(active))
    return {"cuCtxGetCurrent": rc_ctx, "current_context": hex(ctx.value or 0),
            "cuDevicePrimaryCtxGetState": rc_state, "primary_flags": flags.value, "primary_active": active.value}


def try_option(path: str, option: str) -> dict:
    with av.logging.Capture() as logs:
        try:
            with av.open(path, hwaccel=HWAccel("cuda", device="0", options={option: "1"},
                                                allow_software_fallback=False)) as c:
                frame = next(c.decode(video=0))
                result = {"opened": True, "format": frame.format.name,
                          "sw_format": getattr(frame.sw_format, "name", None)}
        except Exception as exc:  # noqa: BLE001 - reported
            result = {"opened": False, "error": f"{type(exc).__name__}: {exc}"}
    result["ffmpeg_log"] = [m for _, _, m in logs if "cuda" in m.lower() or "context" in m.lower()][:8]
    return result


def main() -> None:
    path = str(Path(os.environ.get("FLOWML_TEST_VIDEOS", ".videos")) / "h264_178x98.mp4")
    av.logging.set_level(av.logging.VERBOSE)
    torch.zeros(1, device="cuda")  # torch's context first, as in a graph
    report = {"pyav": av.__version__, "after_torch": driver_view(),
              "current_ctx": try_option(path, "current_ctx"), "primary_ctx": try_option(path, "primary_ctx")}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
