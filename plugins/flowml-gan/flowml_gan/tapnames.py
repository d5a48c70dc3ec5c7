"""Tap specs (torch-free, so that validating a graph imports no torch)."""

from __future__ import annotations

__all__ = ["parse_tap"]


def parse_tap(spec: str) -> tuple[str, str, int | None]:
    """``"[port=]module.name[:index]"`` -> (port, module name, tuple index or None). The port
    defaults to the module name with ``.`` and ``:`` as ``_`` (``synthesis_b16_conv1``), with
    ``layer_`` before a name that starts with a digit (``layer_0``)."""
    port, eq, target = spec.partition("=")
    if not eq:
        port, target = "", spec
    name, colon, index = target.partition(":")
    if colon and not index.isdigit():
        raise ValueError(f"tap {spec!r}: after ':' comes the index of a tensor in the module's "
                         "output tuple, e.g. synthesis.b16:0")
    if not port:
        port = target.replace(".", "_").replace(":", "_")
        port = f"layer_{port}" if port[:1].isdigit() else port  # nn.Sequential's "0"
    if not port.isidentifier():
        raise ValueError(f"tap {spec!r}: port name {port!r} is not an identifier; write "
                         "`name=module.path`, e.g. l16=synthesis.b16.conv1")
    return port, name, int(index) if colon else None
