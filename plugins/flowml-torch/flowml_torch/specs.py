"""Tap and edit specs as graph files write them (torch-free: validating a graph imports no torch).

- a tap: ``"[port=]module.name[:index]"`` (``parse_tap``);
- an edit: ``{name: synthesis.input.weight, op: scale|add|set|noise, value: 1.0}``
  (``EditSpec``); in a graph file ``value`` may follow an expression (``{expr: "sin(t)"}``),
  and each edit's value is a live param of its own, ``/<node>/edits/<i>/value`` (the
  ``parts`` of ``EDITS_FIELD``'s metadata).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from typing_extensions import Required, TypedDict

from pydantic import BaseModel, ConfigDict

__all__ = ["parse_tap", "EditSpec", "EditOp", "check_edits", "check_taps", "EDITS_HELP"]

EditOp = Literal["scale", "add", "set", "noise"]
EDITS_HELP = ("weight edits, e.g. [{name: synthesis.input.weight, op: scale, value: {expr: "
              "\"sin(t)\"}}]; op: scale, add, set or noise (value: its amplitude); each value is "
              "live at /<node>/edits/<i>/value, the whole list as JSON text at /<node>/edits")


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


def check_taps(taps: list[str], taken: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """Every tap parses and names a port of its own, none of ``taken`` (the node's other
    outputs); raises ValueError saying how to name them. A list that passed is remembered
    (a node's params are validated again at each live change of another param)."""
    key = (tuple(taps), frozenset(taken))
    if not all(isinstance(t, str) for t in key[0]):
        _check_taps(taps, taken)
    elif key not in _TAPS_OK:
        _check_taps(taps, taken)
        if len(_TAPS_OK) >= 256:
            _TAPS_OK.clear()
        _TAPS_OK.add(key)
    return taps


_TAPS_OK: set[tuple[tuple[str, ...], frozenset[str]]] = set()


def _check_taps(taps: list[str], taken: set[str]) -> None:
    ports = [parse_tap(t)[0] for t in taps]
    dup = sorted({p for p in ports if ports.count(p) > 1} | (set(taken) & set(ports)))
    if dup:
        clash = f" (or clash with {', '.join(map(repr, sorted(taken)))})" if taken else ""
        raise ValueError(f"tap ports {dup} are used twice{clash}; name them: "
                         "[a=layer.one, b=layer.two]")


class EditSpec(BaseModel):
    """One weight edit: ``{name: synthesis.b4.conv1.weight, op: scale, value: 0.5}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    op: EditOp = "scale"
    value: float = 1.0
    seed: int = 0
    """For ``noise``: which fixed noise (the same seed and name give the same noise)."""


class _EditDict(TypedDict, total=False):
    """``EditSpec``'s fields as a dict: validated in one pass, no model made and dumped (a
    node's edits are checked at every live change of one of their values: each tick, for one
    following ``t``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    name: Required[str]
    op: EditOp
    value: float
    seed: int


_EDIT_DEFAULTS = {k: f.default for k, f in EditSpec.model_fields.items() if not f.is_required()}
_EDITS: Any = None  # TypeAdapter(list[_EditDict]), made on first use


_KEYS = ("name", "op", "value", "seed")  # EditSpec's fields in order (a test holds them so)
_OPS = frozenset(get_args(EditOp))


def _checked_already(e: Any) -> bool:
    """Is ``e`` an edit as ``check_edits`` returns one: ``EditSpec``'s keys in order, each
    value of the exact type its field validates to (a str op among ``EditOp``, a float value,
    an int seed)? Such an edit validates to itself."""
    return (type(e) is dict and tuple(e) == _KEYS and type(e["name"]) is str
            and type(e["op"]) is str and e["op"] in _OPS and type(e["value"]) is float
            and type(e["seed"]) is int)


def check_edits(edits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each edit checked as ``EditSpec`` checks it (the same fields), kept as a plain dict with
    its keys in ``EditSpec``'s order, defaults filled in (they show and travel as JSON).

    A list of edits that are already in that form (the live path: a part's new value folded
    into the edits that passed before, each tick for one following ``t``) is taken as it is,
    without pydantic, which would give the same."""
    global _EDITS
    if type(edits) is list and all(map(_checked_already, edits)):
        return [dict(e) for e in edits]
    if _EDITS is None:
        from pydantic import TypeAdapter

        _EDITS = TypeAdapter(list[_EditDict])
    return [{k: e[k] if k in e else _EDIT_DEFAULTS[k] for k in EditSpec.model_fields}
            for e in _EDITS.validate_python(edits)]
