"""Reading and writing still image files with Pillow (host ``uint8`` arrays)."""

from __future__ import annotations

from pathlib import Path

from flowml.lazy import lazy_import
np = lazy_import("numpy")
Image = lazy_import("PIL.Image")

from flowml import NodeError
from flowml.fsutil import replace_file

WRITABLE = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def check_writable_suffix(path: str) -> str:
    """A pydantic validator: the file name must end in a format Pillow writes."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITABLE:
        raise ValueError(f"{path!r}: the file name must end in one of {sorted(WRITABLE)}")
    return path


def load_image(path: Path, size: tuple[int, int] | None = None, alpha: bool = False) -> np.ndarray:
    """Read ``path`` as ``(H, W, 3)`` RGB (``(H, W, 4)`` RGBA with ``alpha``) ``uint8``,
    resized to ``size = (width, height)`` (Lanczos) if given."""
    if not path.is_file():
        raise NodeError(f"image file not found: {path}; check `path` (relative to the graph file)")
    try:
        with Image.open(path) as im:
            im = im.convert("RGBA" if alpha else "RGB")
            if size is not None and im.size != tuple(size):
                im = im.resize(tuple(size), Image.Resampling.LANCZOS)
            return np.array(im)
    except (Image.UnidentifiedImageError, OSError) as exc:
        raise NodeError(f"cannot read image {path}: {exc}; use a PNG or JPEG file") from exc


def save_image(array: np.ndarray, path: Path) -> None:
    """Write ``(H, W, C)`` ``uint8`` to ``path`` (format from its suffix), atomically: readers
    never see a half-written file. JPEG drops alpha."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    if path.suffix.lower() in {".jpg", ".jpeg"} and image.mode == "RGBA":
        image = image.convert("RGB")
    partial = path.with_name(f".{path.name}.partial")
    image.save(partial, format=Image.registered_extensions()[path.suffix.lower()])
    replace_file(partial, path)  # os.replace; retried on Windows while a viewer holds the file
