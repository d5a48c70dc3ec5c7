"""What ``flowml validate`` asks of flowml-kernels' nodes: can this machine run CUDA kernels,
and does a ``cuda.kernel``'s source define its function. No torch, and CuPy only where it is
installed, so validation stays fast and runs anywhere."""

from __future__ import annotations

import functools
import importlib.util
import re

_COMMENT_OR_STRING = re.compile(r'("(?:\\.|[^"\\\n])*")|//[^\n]*|/\*.*?\*/', re.S)
_DIRECTIVE = re.compile(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", re.M)   # with its \ continuations
_LAUNCH_BOUNDS = re.compile(r"__launch_bounds__\s*\([^)]*\)")
_GLOBAL_NAME = re.compile(r"__global__\b[^;{()]*?\b([A-Za-z_]\w*)\s*\(")


@functools.cache
def cuda_problem() -> str | None:
    """Why CuPy kernels cannot run on this machine (no CuPy, no CUDA GPU), or None."""
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed: pip install 'flowml-kernels[cuda]'"
    try:
        import cupy
    except Exception as e:  # a wheel for another CUDA, a missing driver library
        return f"CuPy is not importable ({type(e).__name__}: {e})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy finds no CUDA GPU"
    except Exception as e:
        return f"CuPy finds no usable CUDA GPU ({type(e).__name__}: {e})"
    return None


def global_functions(source: str) -> list[str]:
    """The names of the ``__global__`` functions ``source`` declares (comments and preprocessor
    lines skipped: a kernel declared through a macro is not seen)."""
    code = _COMMENT_OR_STRING.sub(lambda m: m[1] or " ", source)
    code = _LAUNCH_BOUNDS.sub(" ", _DIRECTIVE.sub(" ", code))
    return list(dict.fromkeys(_GLOBAL_NAME.findall(code)))


def function_problem(source: str, function: str, display: str) -> str | None:
    """Why ``source`` (named ``display``) cannot give CuPy ``extern "C" __global__ function``,
    or None. Lenient where it cannot tell (a kernel declared through a macro passes: NVRTC
    then says at setup)."""
    code = _COMMENT_OR_STRING.sub(lambda m: m[1] or " ", source)
    names = global_functions(source)
    if function not in names:
        if names:
            listed = ", ".join(repr(n) for n in names)
            return f"{display} has no __global__ function {function!r}; it declares {listed}"
        if not re.search(rf"\b{re.escape(function)}\b", code):
            return (f"{display} has no function {function!r}: write "
                    f"extern \"C\" __global__ void {function}(...)")
        return None
    if 'extern "C"' not in code:
        return (f"{display}: {function!r} is not extern \"C\" (NVRTC mangles C++ names, so CuPy "
                f"cannot find it): write extern \"C\" __global__ void {function}(...)")
    return None
