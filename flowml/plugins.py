"""Plugin discovery: pluggy + the ``flowml`` entry-point group.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points.flowml]
    mynodes = "mynodes.plugin"

and ``mynodes/plugin.py`` implements the one hook::

    import flowml

    @flowml.hookimpl
    def register_node_types(register):
        register(MyNode)

The built-in plugins under ``plugins/`` register exactly this way. A plugin that fails to
import or to register is recorded in ``Registry.failures`` and never breaks the others.
"""

from __future__ import annotations

import difflib
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Callable, Iterable

import pluggy

from .node import Node

GROUP = "flowml"
hookspec = pluggy.HookspecMarker(GROUP)
hookimpl = pluggy.HookimplMarker(GROUP)


class Hooks:
    @hookspec
    def register_node_types(self, register: Callable[[type[Node]], None]) -> None:
        """Call ``register(NodeClass)`` once for each node type the plugin provides."""


@dataclass(frozen=True)
class NodeType:
    """A registered node type and where it came from."""

    name: str
    cls: type[Node]
    plugin: str
    distribution: str = ""
    version: str = ""


@dataclass(frozen=True)
class PluginFailure:
    plugin: str
    error: str
    detail: str = ""


@dataclass
class Registry:
    """Node types by name, plus the plugins that could not be loaded."""

    types: dict[str, NodeType] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)

    def get(self, name: str) -> NodeType | None:
        return self.types.get(name)

    def suggest(self, name: str, n: int = 3) -> list[str]:
        return difflib.get_close_matches(name, list(self.types), n=n, cutoff=0.5)

    def add(self, cls: type[Node], plugin: str, dist: str = "", version: str = "") -> None:
        if not (isinstance(cls, type) and issubclass(cls, Node)):
            raise TypeError(f"register() takes a Node subclass, got {cls!r}")
        if not cls.type_name or "." not in cls.type_name:
            raise TypeError(f"{cls.__name__}.type_name must be '<family>.<name>', got {cls.type_name!r}")
        other = self.types.get(cls.type_name)
        if other is not None and other.cls is not cls:
            self.failures.append(PluginFailure(
                plugin, f"node type {cls.type_name!r} is already registered by plugin {other.plugin!r}"))
            return
        self.types[cls.type_name] = NodeType(cls.type_name, cls, plugin, dist, version)


def _register_from(registry: Registry, module: object, plugin: str, dist: str, version: str) -> None:
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(Hooks)
    pm.register(module, name=plugin)
    staged = Registry()
    pm.hook.register_node_types(register=lambda cls: staged.add(cls, plugin, dist, version))
    for t in staged.types.values():
        registry.add(t.cls, plugin, dist, version)
    registry.failures.extend(staged.failures)


def load_registry(extra_modules: Iterable[tuple[str, object]] = ()) -> Registry:
    """Load every installed plugin (entry points), then ``extra_modules`` ((name, module) pairs,
    e.g. from tests). Never raises for a broken plugin: see ``Registry.failures``."""
    registry = Registry()
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else ""
        version = ep.dist.version if ep.dist else ""
        try:
            module = ep.load()
            _register_from(registry, module, ep.name, dist, version)
        except Exception as exc:  # a broken plugin must not take the others down
            registry.failures.append(PluginFailure(
                ep.name, f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=-3)))
    for name, module in extra_modules:
        try:
            _register_from(registry, module, name, "", "")
        except Exception as exc:
            registry.failures.append(PluginFailure(name, f"{type(exc).__name__}: {exc}"))
    return registry
