"""The graph file's structure as pydantic models (no torch, no plugins imported here).

These models check the *shape* of a graph file. What depends on installed node types
(types, ports, params, wiring, cycles) is checked in ``validate.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"


Seconds = Annotated[float, Field(ge=0, le=600)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateClock(Strict):
    """Ticks at a fixed rate instead of following a source's frames."""

    fps: float = Field(gt=0, le=1000, description="ticks per second")


class OscSpec(Strict):
    """Where the graph listens for OSC and where it answers."""

    port: int = Field(9000, ge=0, le=65535, description="UDP port for OSC in (0: any free port)")
    host: str = Field("127.0.0.1", description="address to listen on; 0.0.0.0 for all")
    reply: str | None = Field(None, description="host:port that errors and values are sent to")
    prefix: str = Field("", description="address prefix, e.g. /flowml")
    oscquery_port: int | None = Field(None, ge=0, le=65535, description="HTTP port for OSCQuery")
    send: list[str] = Field(default_factory=list, description=(
        "host:port targets that stats are sent to; default: the reply address"))
    stats: float = Field(0, ge=0, le=100, description=(
        "send /flowml/stats/... (fps, latency, drops) to the targets this many times a second; 0: off"))
    mdns: bool = Field(True, description=(
        "advertise OSCQuery (_oscjson._tcp) and OSC (_osc._udp) over mDNS/DNS-SD where OSCQuery is on"))
    allow_origins: list[str] = Field(default_factory=list, description=(
        "web pages (origins such as http://192.168.1.20:8080, or host names) that may read the "
        "OSCQuery tree and LISTEN; local pages always may; '*' lets any page"))


class NodeSpec(Strict):
    """One node of the graph."""

    type: str = Field(description="node type, e.g. image.resize (see `flowml nodes`)")
    plugin: str | None = Field(None, description=(
        "the plugin whose type to use, where several plugins register the same type name"))
    inputs: dict[str, str] = Field(default_factory=dict, description="input port -> 'node/port'")
    params: dict[str, Any] = Field(default_factory=dict, description="the node type's params")
    every: int = Field(1, ge=1, description="run every N ticks, hold the last output between")
    hold: bool = Field(False, description="run asynchronously; others see the last finished output")
    device: str | None = Field(None, description="cpu, cuda, cuda:N; default: the graph's")
    smooth: Seconds | dict[str, Seconds] | None = Field(None, description=(
        "smooth live changes of numeric params: seconds for all of them, or {param: seconds}"))
    cuda_graph: bool = Field(False, description="capture as a CUDA graph (static shapes; GPU only)")


class GraphSpec(Strict):
    """A whole graph file."""

    flowml: Literal[1] = Field(description="graph file format version")
    name: str = ""
    clock: str | RateClock | None = Field(
        None, description="the source node whose frames drive ticks, or {fps: N}")
    mode: Literal["auto", "live", "offline"] = Field(
        "auto", description="live: latest frame wins; offline: every frame, nothing dropped")
    max_in_flight: int = Field(2, ge=1, le=16, description="frames being processed at once")
    on_error: Literal["stop", "skip"] = Field(
        "stop", description="when a node raises: stop the graph, or skip the frame and go on")
    device: str = Field("auto", description="auto (cuda if present), cpu, cuda, cuda:N")
    osc: OscSpec | None = None
    plugins: dict[str, str] = Field(default_factory=dict, description=(
        "type name -> plugin, for type names that several installed plugins register"))
    nodes: dict[str, NodeSpec] = Field(min_length=1)
