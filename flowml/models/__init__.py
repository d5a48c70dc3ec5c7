"""Models the example graphs and ``flowml bench`` use, built on the spot with no download
(shipped in the wheel, so nothing needs a clone of the repository).

``BUILDERS`` maps a model file name, as the example graphs name it under ``models/``, to the
function that writes it into a folder; ``build_model(name, folder)`` calls it. Plugins add the
models of their own example graphs through the ``register_model_builders`` hook
(``flowml.plugins``); pass their ``Registry`` to ``builders`` / ``build_model``. torch is
imported only when a model is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def _toon(folder: Path) -> list[Path]:
    from .toon import build

    return build(folder, export=False)


def _toon_export(folder: Path) -> list[Path]:
    from .toon import build

    return build(folder)


def _difference_matte(folder: Path) -> list[Path]:
    from .matting import build_difference_matte

    return [build_difference_matte(folder)]


def _bgmv2(folder: Path) -> list[Path]:
    from .matting import build_bgmv2

    return [build_bgmv2(folder)]


BUILDERS: dict[str, Callable[[Path], list[Path]]] = {
    "toon.pt": _toon,
    "toon.pt2": _toon_export,
    "difference_matte.pt": _difference_matte,
    "bgmv2_resnet50_random.pt": _bgmv2,
}


def builders(registry: Any = None) -> dict[str, Callable[[Path], list[Path]]]:
    """Every buildable model file: ``BUILDERS``, then the plugins' of ``registry`` (a
    ``flowml.plugins.Registry``; flowml's own win a name both give)."""
    plugins = getattr(registry, "model_builders", {})
    return {**{name: build for name, (_, build) in plugins.items()}, **BUILDERS}


def build_model(name: str, folder: Path, registry: Any = None) -> list[Path]:
    """Write the model file ``name`` (a key of ``builders(registry)``) into ``folder``; return
    the files written. ``KeyError`` naming the buildable ones for any other name."""
    known = builders(registry)
    try:
        builder = known[name]
    except KeyError:
        raise KeyError(f"flowml cannot build {name!r}; it builds {', '.join(sorted(known))}") from None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return builder(folder)
