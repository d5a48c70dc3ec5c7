"""Node types for the graph tests: ports of each kind, params with ranges, one of each shape
(source, filter, sink, ports computed from params). Nothing here runs; only the declarations
matter to validation."""

from __future__ import annotations

from typing import Literal

from flowml import IMAGE, MATRIX, SCALAR, TENSOR, Field, Input, Node, Output, Params, Ports
from flowml.plugins import Registry, hookimpl


class Camera(Node):
    """A live camera (test double)."""

    type_name = "test.camera"
    outputs = (Output("image", IMAGE, "the frame"),)
    live = True

    class Params(Params):
        device: int = Field(0, ge=0, le=9, description="camera index")
        fps: float = Field(30.0, gt=0, le=240, description="frames per second")


class Still(Node):
    """An image file."""

    type_name = "test.still"
    outputs = (Output("image", IMAGE), Output("size", TENSOR))

    class Params(Params):
        path: str = Field(description="image file to read")


class Blur(Node):
    """Gaussian blur, optionally masked."""

    type_name = "test.blur"
    inputs = (Input("image", IMAGE), Input("mask", IMAGE, optional=True))
    outputs = (Output("image", IMAGE),)

    class Params(Params):
        radius: int = Field(3, ge=0, le=50, description="kernel radius in pixels")
        sigma: float = Field(1.0, gt=0, description="standard deviation")


class Homography(Node):
    """Estimate the homography mapping src onto dst."""

    type_name = "test.homography"
    inputs = (Input("src", IMAGE), Input("dst", IMAGE))
    outputs = (Output("matrix", MATRIX), Output("inliers", SCALAR))

    class Params(Params):
        method: Literal["orb", "sift"] = "orb"


class Warp(Node):
    """Warp an image by a 3x3 matrix."""

    type_name = "test.warp"
    inputs = (Input("image", IMAGE), Input("matrix", MATRIX))
    outputs = (Output("image", IMAGE),)


class Norm(Node):
    """The norm of any tensor."""

    type_name = "test.norm"
    inputs = (Input("tensor", TENSOR),)
    outputs = (Output("value", SCALAR),)


class Display(Node):
    """Show images in a window."""

    type_name = "test.display"
    inputs = (Input("image", IMAGE),)


class Noise(Node):
    """Noise, optionally seeded by a scalar: no required input, yet not a source."""

    type_name = "test.noise"
    inputs = (Input("seed", SCALAR, optional=True),)
    outputs = (Output("image", IMAGE),)


class Model(Node):
    """A model whose input names are params."""

    type_name = "test.model"
    outputs = (Output("out", TENSOR),)

    class Params(Params):
        inputs: list[str] = Field(default_factory=lambda: ["x"], description="input names")

    @classmethod
    def ports(cls, params: Params) -> Ports:
        return Ports(tuple(Input(n, TENSOR) for n in params.inputs), cls.outputs)


ALL = (Camera, Still, Blur, Homography, Warp, Norm, Display, Noise, Model)


@hookimpl
def register_node_types(register) -> None:
    for cls in ALL:
        register(cls)


def make_registry() -> Registry:
    """A registry holding exactly the types above, whatever plugins are installed."""
    registry = Registry()
    for cls in ALL:
        registry.add(cls, "testnodes")
    return registry
