"""NVRTC without a GPU, for the tests of kernels that ship as CUDA C: compile for an
architecture and read what ptxas made of each kernel, either from the cubin's ``.nv.info``
section (``compile_cubin`` + ``kernel_info``: register count and stack frame of each named
kernel) or from ptxas' own report (``ptxas_report``: registers and spill bytes of a program's
one kernel). NVRTC comes with torch's CUDA wheels (``nvidia/cu*/lib/libnvrtc.so*``) or the
toolkit; ``find_nvrtc`` says whether it is here. No torch, no CuPy, no GPU."""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import struct
import sys

EIATTR_FRAME_SIZE, EIATTR_REGCOUNT = 0x11, 0x2F


def find_nvrtc() -> str | None:
    """A loadable libnvrtc, or None."""
    for root in sys.path:
        hits = sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib", "libnvrtc.so*"))
                      + glob.glob(os.path.join(root, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*")))
        hits = [h for h in hits if "builtins" not in h and ".alt." not in h]
        if hits:
            return hits[0]
    return ctypes.util.find_library("nvrtc")


def _compile(lib: ctypes.CDLL, source: str, names: list[str], opts: list[bytes]) -> tuple[ctypes.c_void_p, str]:
    """An NVRTC program of ``source`` compiled with ``opts`` and its log; raises RuntimeError
    with the log when it does not compile. The caller destroys the program."""
    prog = ctypes.c_void_p()
    if lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"kernel.cu", 0, None, None):
        raise RuntimeError("nvrtcCreateProgram failed")
    for n in names:
        lib.nvrtcAddNameExpression(prog, n.encode())
    rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    text = log.value.decode(errors="replace")
    if rc:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
        raise RuntimeError(text)
    return prog, text


def ptxas_report(source: str, arch: str = "sm_90") -> dict[str, int]:
    """``{registers, stack, spill_stores, spill_loads}`` of the one kernel in ``source``, from
    ptxas' ``-v`` report; raises RuntimeError with NVRTC's log when it does not compile."""
    lib = ctypes.CDLL(find_nvrtc())
    prog, log = _compile(lib, source, [], [f"-arch={arch}".encode(), b"-Xptxas", b"-v"])
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    regs = re.search(r"Used (\d+) registers", log)
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", log)
    if not (regs and frame):
        raise RuntimeError(f"no ptxas report in NVRTC's log:\n{log}")
    return {"registers": int(regs[1]), "stack": int(frame[1]), "spill_stores": int(frame[2]),
            "spill_loads": int(frame[3])}


def compile_cubin(source: str, names: list[str], arch: str = "sm_90") -> tuple[bytes, dict[str, str]]:
    """(cubin, {name expression: lowered symbol}); raises RuntimeError with NVRTC's log."""
    lib = ctypes.CDLL(find_nvrtc())
    prog, _ = _compile(lib, source, names, [f"-arch={arch}".encode(), b"--std=c++14"])
    try:
        size = ctypes.c_size_t()
        lowered = {}
        for n in names:
            p = ctypes.c_char_p()
            lib.nvrtcGetLoweredName(prog, n.encode(), ctypes.byref(p))
            lowered[n] = p.value.decode()
        lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
        cubin = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetCUBIN(prog, cubin)
        return cubin.raw, lowered
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def kernel_info(cubin: bytes) -> dict[str, dict[int, int]]:
    """{kernel symbol: {EIATTR: value}} from the cubin's (ELF64) ``.nv.info`` records."""
    shoff, = struct.unpack_from("<Q", cubin, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", cubin, 0x3A)
    secs = [struct.unpack_from("<IIQQQQIIQQ", cubin, shoff + i * shentsize) for i in range(shnum)]

    def cstr(at: int) -> str:
        return cubin[at:cubin.index(b"\0", at)].decode()

    names = secs[shstrndx][4]
    symtab = next(s for s in secs if s[1] == 2)  # SHT_SYMTAB
    strtab = secs[symtab[6]][4]
    out: dict[str, dict[int, int]] = {}
    for s in secs:
        if cstr(names + s[0]) != ".nv.info":
            continue
        p, end = s[4], s[4] + s[5]
        while p < end:
            fmt, attr = cubin[p], cubin[p + 1]
            p += 2
            if fmt == 4:      # EIFMT_SVAL: u16 size, then (u32 symbol, u32 value) for these
                size, = struct.unpack_from("<H", cubin, p)
                p += 2
                if size >= 8:
                    sym, val = struct.unpack_from("<II", cubin, p)
                    st_name, = struct.unpack_from("<I", cubin, symtab[4] + 24 * sym)
                    out.setdefault(cstr(strtab + st_name), {})[attr] = val
                p += size
            elif fmt == 3:    # EIFMT_HVAL
                p += 2
            elif fmt == 2:    # EIFMT_BVAL
                p += 1
    return out
