"""CUDA C that plugins' NVRTC kernels share (flowml-kernels, flowml-gan): element access
snippets, and ``host_library``, which builds the same source as C++ for their CPU tests.

``ELEMENT_ACCESS[dtype] = (storage type T, load body, store body)``: the bodies of
``float ld(const T* p, long long i)`` and ``void st(T* p, long long i, float v)`` (double for
float64). float16 and bfloat16 are raw 16-bit words with explicit conversions (PTX ``cvt`` for
half, round-to-nearest-even bit arithmetic for bfloat16), so NVRTC needs no CUDA headers; on a
host compiler (the CPU tests compile the same source with g++ >= 12) half goes through
``_Float16``. Kernels accumulate in float whatever the storage type is.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["ELEMENT_ACCESS", "host_library"]

ELEMENT_ACCESS: dict[str, tuple[str, str, str]] = {
    "float64": ("double", "return p[i];", "p[i] = v;"),
    "float32": ("float", "return p[i];", "p[i] = v;"),
    "float16": (
        "unsigned short",
        '\n#ifdef __CUDA_ARCH__\n'
        'float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p[i])); return f;'
        '\n#else\n_Float16 f; std::memcpy(&f, p + i, 2); return (float)f;\n#endif\n',
        '\n#ifdef __CUDA_ARCH__\n'
        'unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v)); p[i] = h;'
        '\n#else\n_Float16 f = (_Float16)v; std::memcpy(p + i, &f, 2);\n#endif\n',
    ),
    "bfloat16": (
        "unsigned short",
        "return __uint_as_float(((unsigned int)p[i]) << 16);",
        "unsigned int u = __float_as_uint(v);"
        " if ((u & 0x7fffffffu) > 0x7f800000u) { p[i] = 0x7fc0; return; }"
        " u += 0x7fffu + ((u >> 16) & 1u); p[i] = (unsigned short)(u >> 16);",
    ),
}


def host_library(source: str, folder: str | os.PathLike[str] | None = None, opt: str = "-O1") -> ctypes.CDLL:
    """CUDA C written to compile as C++ too, built with the host's g++ (or c++) into a shared
    object and loaded: the CPU tests of kernels that run with NVRTC on the GPU. Cached by the
    source and flags in ``folder`` (default: a ``flowml-host-kernels`` folder in the temp dir);
    written under a temporary name and renamed, so processes building the same source at once
    do not read a half-written file. Half precision needs g++ >= 12 (``_Float16``)."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        raise RuntimeError("compiling CUDA C as C++ for the CPU needs a C++ compiler: install g++ "
                           "(>= 12 for _Float16; Debian: apt-get install g++)")
    tag = hashlib.sha1(f"{opt}\n{source}".encode()).hexdigest()[:16]
    where = Path(folder) if folder is not None else Path(tempfile.gettempdir()) / "flowml-host-kernels"
    where.mkdir(parents=True, exist_ok=True)
    so = where / f"{tag}.so"
    if not so.exists():
        cpp = where / f"{tag}.cpp"
        cpp.write_text(source)
        tmp = where / f"{tag}.{os.getpid()}.so"
        subprocess.run([cxx, opt, "-shared", "-fPIC", "-x", "c++", str(cpp), "-o", str(tmp)],
                       check=True, capture_output=True)
        os.replace(tmp, so)
    return ctypes.CDLL(str(so))
