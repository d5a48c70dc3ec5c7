"""Plugin discovery: pluggy + the ``flowml`` entry-point group.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points.flowml]
    mynodes = "mynodes.plugin"

and ``mynodes/plugin.py`` implements the hook::

    import flowml

    @flowml.hookimpl
    def register_node_types(register):
        register(MyNode)

and, where its example graphs read model files it can make (random weights, no download),
``register_model_builders(register)``: ``register("mymodel.pt", build)``, ``build(folder)``
writing the file into ``folder`` and returning the paths written (``flowml examples copy``).

The built-in plugins under ``plugins/`` register exactly this way. A plugin that fails to
import or to register is recorded in ``Registry.failures`` and never breaks the others.
"""

from __future__ import annotations

import difflib
import os
import re
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
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

    @hookspec
    def register_model_builders(self, register: Callable[[str, "ModelBuilder"], None]) -> None:
        """Call ``register(file_name, build)`` for each model file the plugin's example graphs
        read from ``models/`` and the plugin can write itself: ``build(folder)`` writes it into
        ``folder`` and returns the paths written. Optional."""


ModelBuilder = Callable[[Path], list[Path]]
"""Writes a model file into a folder; returns the paths written."""


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
    """A plugin that failed to import, or one of its types that could not be registered."""

    plugin: str
    error: str
    detail: str = ""
    """The traceback, for ``flowml nodes --verbose``."""
    loaded: bool = False
    """True when the plugin loaded and only one of its types could not be registered."""

    def __str__(self) -> str:
        if self.loaded:
            return f"plugin {self.plugin!r}: {self.error}"
        return f"plugin {self.plugin!r} failed to load: {self.error}"


CHOICE_ENV = "FLOWML_PLUGINS"
"""``image.flip=myplugin,capture.pattern=std``: which plugin provides a type that several
plugins register, for every graph (a graph's own ``plugins:`` or a node's ``plugin:`` wins)."""


@dataclass
class Registry:
    """Node types by name, plus the plugins that could not be loaded.

    A type name is owned by one plugin: when two register the same name, both are kept in
    ``candidates`` and the name resolves only where a graph (``plugins: {name: plugin}`` or a
    node's ``plugin:``) or ``FLOWML_PLUGINS`` says which one to use."""

    types: dict[str, NodeType] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    candidates: dict[str, list[NodeType]] = field(default_factory=dict)
    """Every registration of a name that more than one plugin registers, in load order."""
    model_builders: dict[str, tuple[str, ModelBuilder]] = field(default_factory=dict)
    """Model file name -> (plugin, its builder), from ``register_model_builders``; the first
    plugin to register a name keeps it."""

    def configured(self, name: str) -> str | None:
        """The plugin ``FLOWML_PLUGINS`` chooses for ``name``, if it names one."""
        return configured_choices().get(name)

    def get(self, name: str, plugin: str | None = None) -> NodeType | None:
        """The type called ``name`` (from ``plugin`` when given, else from the plugin
        ``FLOWML_PLUGINS`` names; ``types[name]`` where the name has one owner)."""
        if plugin is None and name in self.candidates:
            plugin = self.configured(name)
        if plugin is None:
            return self.types.get(name)
        return next((t for t in self.registrations(name) if t.plugin == plugin), None)

    def registrations(self, name: str) -> list[NodeType]:
        """Every plugin's registration of ``name`` (one, unless several plugins claim it)."""
        if name in self.candidates:
            return list(self.candidates[name])
        return [self.types[name]] if name in self.types else []

    def owners(self, name: str) -> list[str]:
        """The plugins that register ``name``."""
        return [t.plugin for t in self.registrations(name)]

    def suggest(self, name: str, n: int = 3) -> list[str]:
        return difflib.get_close_matches(name, list(self.types), n=n, cutoff=0.5)

    def add(self, cls: type[Node], plugin: str, dist: str = "", version: str = "") -> None:
        """Register ``cls``; raises ``TypeError`` for a class that is not a proper node type."""
        check_node_type(cls)
        entry = NodeType(cls.type_name, cls, plugin, dist, version)
        other = self.types.get(cls.type_name)
        if other is None:
            self.types[cls.type_name] = entry
        elif other.cls is cls:
            return
        elif other.plugin == plugin:
            raise TypeError(f"{cls.__module__}.{cls.__qualname__}: node type {cls.type_name!r} is "
                            f"already registered by {other.cls.__module__}.{other.cls.__qualname__} "
                            "in the same plugin; give one of them another type_name")
        else:
            known = self.candidates.setdefault(cls.type_name, [other])
            if all(t.cls is not cls for t in known):
                known.append(entry)

    def conflict(self, name: str) -> str | None:
        """What to say about a name several plugins register (None if only one does)."""
        owners = self.owners(name)
        if len(owners) < 2:
            return None
        listing = " and ".join(repr(o) for o in owners)
        return (f"node type {name!r} is registered by plugins {listing}; say which one to use: "
                f"`plugins: {{{name}: {owners[0]}}}` at the top of the graph file, `plugin: "
                f"{owners[0]}` in the node, or {CHOICE_ENV}={name}={owners[0]}")


def configured_choices() -> dict[str, str]:
    """``{type name: plugin}`` from ``FLOWML_PLUGINS`` (malformed entries are ignored)."""
    text = os.environ.get(CHOICE_ENV, "")
    pairs = (item.partition("=") for item in text.split(",") if "=" in item)
    return {name.strip(): plugin.strip() for name, _, plugin in pairs if name.strip() and plugin.strip()}


def check_node_type(cls: object) -> None:
    """Raise ``TypeError`` saying what to fix when ``cls`` cannot be registered."""
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise TypeError(f"register() takes a flowml.Node subclass (a class, or a function "
                        f"decorated with @flowml.function_node), got {cls!r}")
    name = cls.type_name
    if not isinstance(name, str) or not TYPE_NAME.fullmatch(name):
        raise TypeError(f"{cls.__module__}.{cls.__qualname__}.type_name must be "
                        f"'<family>.<name>' in lower case letters, digits and '_' "
                        f"(e.g. 'mynodes.blur'), got {name!r}")


TYPE_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
"""Type names: ``family.name``, lower case letters, digits and ``_`` (``mynodes.edge_blur``)."""


def _register_from(registry: Registry, module: object, plugin: str, dist: str, version: str) -> None:
    """Call the plugin's hook; a class that cannot be registered is a failure of its own."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(Hooks)
    pm.register(module, name=plugin)

    def register(cls: type[Node]) -> None:
        try:
            registry.add(cls, plugin, dist, version)
        except TypeError as exc:
            registry.failures.append(PluginFailure(plugin, f"cannot register a node type: {exc}",
                                                   traceback.format_exc(limit=-4), loaded=True))

    def register_builder(name: str, build: ModelBuilder) -> None:
        if not (isinstance(name, str) and name and "/" not in name and callable(build)):
            registry.failures.append(PluginFailure(
                plugin, f"register_model_builders: register(file name, build) got {name!r}, {build!r}",
                loaded=True))
            return
        registry.model_builders.setdefault(name, (plugin, build))

    pm.hook.register_node_types(register=register)
    pm.hook.register_model_builders(register=register_builder)


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
                ep.name, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    for name, module in extra_modules:
        try:
            _register_from(registry, module, name, "", "")
        except Exception as exc:
            registry.failures.append(PluginFailure(
                name, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    return registry
