"""User CUDA C compiled with NVRTC through CuPy (``cupy.RawModule``), errors as ``file:line``.

No torch here, and CuPy only inside ``compile_kernel``: ``map_compiler_log`` runs anywhere.
"""

from __future__ import annotations

import re
from typing import Any

_LOG_LINE = re.compile(r"^(?P<file>.*?)\((?P<line>\d+)\): (?P<kind>catastrophic error|error|warning|remark)"
                       r"\s*:?\s*(?P<msg>.*)$")
_SUMMARY = re.compile(r"errors? detected in the compilation of")
_cache: dict[tuple[str, str, int, tuple[str, ...]], Any] = {}


class KernelCompileError(Exception):
    """NVRTC refused the source; ``messages`` are ``file:line: error: ...`` lines."""

    def __init__(self, messages: list[str], log: str):
        self.messages, self.log = messages, log
        super().__init__("\n".join(messages) or log)


def map_compiler_log(log: str, display: str) -> list[str]:
    """NVRTC's ``name(line): error: text`` lines as ``display:line: error: text``, with the
    source lines (and carets) NVRTC prints under them kept, indented."""
    out: list[str] = []
    for raw in log.splitlines():
        line = raw.strip()
        m = _LOG_LINE.match(line)
        if m:
            out.append(f"{display}:{m['line']}: {m['kind']}: {m['msg']}")
        elif line and out and not _SUMMARY.search(line):
            out.append("    " + raw.rstrip())
    return out


def compile_kernel(source: str, function: str, display: str, device: int = 0,
                   options: tuple[str, ...] = ("-std=c++17",)) -> Any:
    """The ``extern "C" __global__`` ``function`` of ``source``, loaded on GPU ``device``, as
    a CuPy function object; compiled once per (source, function, device, options) in this
    process (CuPy also caches the binary on disk). Raises ``KernelCompileError`` whose
    messages say ``display:line``."""
    key = (source, function, device, options)
    if key in _cache:
        return _cache[key]
    import cupy

    try:
        with cupy.cuda.Device(device):
            fn = cupy.RawModule(code=source, options=options).get_function(function)
    except cupy.cuda.compiler.CompileException as e:
        log = str(e)
        raise KernelCompileError(map_compiler_log(log, display), log) from None
    except cupy.cuda.driver.CUDADriverError as e:     # e.g. no such function in the module
        raise KernelCompileError([f"{display}: {e}: is the kernel declared "
                                  f"extern \"C\" __global__ void {function}(...)?"], str(e)) from None
    _cache[key] = fn
    return fn
