"""Fixtures for the graph tests: a registry of the test node types, and helpers that write a
graph file to a temporary folder (the current directory, so messages say ``graph.yaml``)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from nodes_for_tests import make_registry

from flowml.graph import GraphErrors, ValidatedGraph, load_graph
from flowml.plugins import Registry


@pytest.fixture
def registry() -> Registry:
    return make_registry()


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def errors(in_tmp: Path, registry: Registry) -> Callable[..., str]:
    """``errors(yaml)``: the full error text for a graph that must fail to load."""

    def errors(text: str, reg: Registry | None = None) -> str:
        Path("graph.yaml").write_text(textwrap.dedent(text))
        with pytest.raises(GraphErrors) as caught:
            load_graph("graph.yaml", reg or registry)
        return str(caught.value)

    return errors


@pytest.fixture
def load(in_tmp: Path, registry: Registry) -> Callable[[str], ValidatedGraph]:
    """``load(yaml)``: the validated graph (fails the test with the errors if any)."""

    def load(text: str) -> ValidatedGraph:
        Path("graph.yaml").write_text(textwrap.dedent(text))
        try:
            return load_graph("graph.yaml", registry)
        except GraphErrors as exc:
            pytest.fail(f"unexpected errors:\n{exc}")

    return load
