"""Loading a user's Python function, by import path or from a file next to the graph."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import re
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from flowml import NodeError


def load_function(function: str, path: Path | None = None, *,
                  module_name: str = "flowml_user") -> Callable[..., Any]:
    """The callable named by ``function``.

    Without ``path``: ``"package.module:name"`` is imported (``name`` may be dotted:
    ``"module:Class.method"``). With ``path``: ``function`` is a name in that file, which is
    executed afresh as module ``module_name`` on every call, so calling again reloads an edited
    file. Every problem raises ``NodeError`` naming the file or module and the function.
    """
    if path is not None:
        if ":" in function:
            raise NodeError(f"with `path: {path.name}`, `function` is a name in that file, "
                            f"e.g. 'process', not {function!r}")
        module, attr, where = _load_file(path, module_name), function, str(path)
    else:
        module_path, sep, attr = function.partition(":")
        if not (sep and module_path and attr):
            raise NodeError(f"function {function!r}: write 'module:function' (e.g. "
                            "'mypackage.effects:invert'), or give `path: file.py` and `function: name`")
        module, where = _import(module_path, function), f"module {module_path!r}"
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            defined = [n for n in vars(module) if not n.startswith("_") and callable(vars(module)[n])]
            near = difflib.get_close_matches(part, defined, n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else f"; it defines {sorted(defined)}"
            raise NodeError(f"{where} has no function {attr!r}{hint}")
        target = getattr(target, part)
    if not callable(target):
        raise NodeError(f"{attr!r} in {where} is a {type(target).__name__}, not a function")
    return target


def _import(module_path: str, function: str) -> ModuleType:
    try:
        return importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        raise NodeError(f"cannot import module {module_path!r} (for function {function!r}): {exc}; "
                        "install it, or load a file with `path: file.py`") from exc
    except Exception as exc:
        raise NodeError(f"importing module {module_path!r} failed: {type(exc).__name__}: {exc}") from exc


def _load_file(path: Path, module_name: str) -> ModuleType:
    if not path.is_file():
        raise NodeError(f"Python file not found: {path}; check `path` (relative to the graph file)")
    name = re.sub(r"\W", "_", module_name)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses, pickle and typing look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise NodeError(f"{path}{_line_in(exc, path)}: {type(exc).__name__}: {exc}") from exc
    return module


def _line_in(exc: BaseException, path: Path) -> str:
    """``":12"``: the line of ``path`` where ``exc`` was raised, if it was raised there."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f":{exc.lineno}"
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f":{lines[-1]}" if lines else ""
