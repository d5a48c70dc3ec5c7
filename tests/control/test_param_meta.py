"""Param metadata: flowml.Field's live / rebuild / file, read back by flowml.parammeta."""

from __future__ import annotations

from typing import Annotated

import pydantic
import pytest

import flowml
from flowml import Field, Params, function_node
from flowml.parammeta import (SCHEMA_KEY, ParamMeta, file_fields, live_fields, param_meta,
                              rebuild_fields)


class P(Params):
    model: str = Field("a.pt", file="input", rebuild=True, description="model")
    image: str = Field("in.png", file="input")
    out: str = Field("out.mp4", file="output", min_length=1)
    device: str = Field("cpu", live=False)
    reload: bool = Field(False, rebuild=True)
    gain: float = Field(1.0, ge=0, le=4)
    plain: int = pydantic.Field(3, ge=0)
    bare: int = 2


def test_meta_per_field():
    assert param_meta(P, "model") == ParamMeta(live=True, rebuild=True, file="input")
    assert param_meta(P, "out") == ParamMeta(file="output")
    assert param_meta(P, "device") == ParamMeta(live=False)
    for name in ("gain", "plain", "bare"):
        assert param_meta(P, name) == ParamMeta()
    with pytest.raises(KeyError, match="no param 'nope'"):
        param_meta(P, "nope")


def test_rebuild_live_and_file_sets():
    assert rebuild_fields(P) == {"model", "image", "device", "reload"}
    assert file_fields(P, "input") == ("model", "image")
    assert file_fields(P, "output") == ("out",)
    assert live_fields(P) == set(P.model_fields) - {"device"}
    with pytest.raises(ValueError, match="role"):
        file_fields(P, "both")  # type: ignore[arg-type]


def test_pydantic_keywords_still_apply():
    with pytest.raises(pydantic.ValidationError):
        P(out="")
    with pytest.raises(pydantic.ValidationError):
        P(gain=5)
    assert P().model == "a.pt"


def test_schema_shows_only_what_differs():
    props = P.model_json_schema()["properties"]
    assert props["model"][SCHEMA_KEY] == {"rebuild": True, "file": "input"}
    assert props["device"][SCHEMA_KEY] == {"live": False}
    assert props["out"][SCHEMA_KEY] == {"file": "output"}
    assert SCHEMA_KEY not in props["gain"] and SCHEMA_KEY not in props["plain"]


def test_user_json_schema_extra_is_kept():
    def add(schema):
        schema["examples"] = ["x.png"]

    class Q(Params):
        a: str = Field("a", file="input", json_schema_extra={"format": "path"})
        b: str = Field("b", file="output", json_schema_extra=add)

    props = Q.model_json_schema()["properties"]
    assert props["a"]["format"] == "path" and props["a"][SCHEMA_KEY] == {"file": "input"}
    assert props["b"]["examples"] == ["x.png"] and props["b"][SCHEMA_KEY] == {"file": "output"}
    assert param_meta(Q, "a").file == "input" and param_meta(Q, "b").file == "output"


def test_annotated_in_function_node():
    @function_node("test.meta_fn")
    def fn(x, *, path: Annotated[str, Field(file="input")] = "a.txt",
           mode: Annotated[str, ParamMeta(live=False)] = "fast", k: int = 1):
        return x

    assert param_meta(fn.Params, "path").file == "input"
    assert param_meta(fn.Params, "mode").live is False
    assert rebuild_fields(fn.Params) == {"path", "mode"}


def test_bad_role_refused():
    with pytest.raises(ValueError, match="file must be"):
        Field("x", file="in")  # type: ignore[arg-type]


def test_tags():
    assert param_meta(P, "model").tag() == "in-file"
    assert param_meta(P, "out").tag() == "out-file"
    assert param_meta(P, "device").tag() == "not live"
    assert param_meta(P, "reload").tag() == "rebuild"
    assert param_meta(P, "gain").tag() == ""


def test_exported():
    assert flowml.Field is Field and flowml.ParamMeta is ParamMeta
