"""``action.record``: on a rule's event, write a clip with pre- and post-roll from encoded packets."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from flowml.lazy import lazy_import
torch = lazy_import("torch")

import flowml
from flowml import IMAGE, JSON, Field, Input, Node, NodeError
from flowml_av.convert import host_rgb24

from .actions import wanted
from .packets import TIME_BASE, ClipFile, Coded, Encoder, PacketRing

Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"]


class Record(Node):
    """Record clips around rule events, cut from a ring of H.264 packets (frames encoded once).

    Every ``image`` is encoded when it arrives (a keyframe every ``gop`` frames) and its packet
    kept for ``buffer_seconds``. An event (from ``rules``; those whose action is ``action``,
    ``*``: all) starts a clip at the keyframe at or before ``event - duration_in_seconds``,
    and the clip runs through ``duration_in_seconds`` after the last event that extends it:
    a rule that keeps matching (its ``continue`` events), or any other event during the clip.
    It holds at most ``max_duration_in_seconds`` of frames (from its first frame). The rule's
    action may give both durations; the params are the defaults. Adjacent clips never share a
    frame: a clip starts after the previous one's last frame, and the frame after a clip ends
    is encoded as a keyframe, so the next clip can start right there.

    One fragmented MP4 per clip in ``folder`` (``<prefix><n>_<rule>_f<frame>.mp4``) and a JSON
    sidecar beside it (the events, rule, times, frames, why it ended), written when the clip
    opens and again when it closes. Ending the graph (Ctrl-C too) closes the clip being written:
    it is a whole, playable file; a hard kill leaves it playable up to its last fragment.
    Runs on its own worker thread; memory is bounded by the ring and the graph's frames in flight.

    ``frames`` (optional; a batching source's ``{index, count, t}``): the image's batch axis
    is then K consecutive frames, all encoded in order, each with its own index and time, and
    each event is taken at the frame it names (its ``frame``), so the clips are the same as one
    frame a tick gives. Without it, item 0 of each tick's image is the tick's frame.
    """

    type_name = "action.record"
    inputs = (Input("image", IMAGE, "(B, C, H, W); item 0 is encoded (with frames: all K, in order)", uint8=True),
              Input("events", JSON, "list of rule events; no value: none", optional=True),
              Input("frames", JSON, "the source's {index, count, t}: image holds K frames in order", optional=True))
    blocking = True

    class Params(flowml.Params):
        folder: str = Field("clips", file="output", rebuild=True, description="folder of the clips, relative to the graph file")
        prefix: str = Field("clip", description="start of each clip's file name")
        action: str = Field("record", description="the action_name of the events to act on; * for all")
        duration_in_seconds: float = Field(5.0, ge=0, le=3600, description="pre- and post-roll (the rule's action may say)")
        max_duration_in_seconds: float = Field(60.0, gt=0, le=86400, description="longest clip (the rule's action may say)")
        buffer_seconds: float | None = Field(None, gt=0, le=3600, rebuild=True, description=(
            "packets kept for pre-roll; none: duration_in_seconds + one GOP + 1 s"))
        fps: float = Field(30.0, gt=0, le=1000, rebuild=True, description="frame rate told to the encoder (rate control)")
        gop: int = Field(30, ge=1, le=10_000, rebuild=True, description="a keyframe every gop frames")
        crf: int = Field(23, ge=0, le=51, rebuild=True, description="quality: 0 lossless ... 51 worst")
        preset: Preset = Field("veryfast", rebuild=True, description="x264 speed/size trade-off")
        threads: int = Field(0, ge=0, le=64, rebuild=True, description="encoder threads; 0: as many as fit")

    def setup(self, ctx: flowml.NodeContext) -> None:
        p = self.params
        self.folder = ctx.resolve(p.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.encoder: Encoder | None = None
        self.ring = PacketRing(p.buffer_seconds or p.duration_in_seconds + p.gop / p.fps + 1.0)
        self.clip: ClipFile | None = None
        self.info: dict[str, Any] = {}
        self.last_index = -1       # the last frame index written to any clip
        self.force_key = False     # encode the next frame as a keyframe (a clip just ended)
        self.prev_t: float | None = None
        self.interval = 1.0 / p.fps
        self.count = 0
        self.last_pts = -1

    # -- events ----------------------------------------------------------------------------
    def _durations(self, event: dict) -> tuple[float, float]:
        action = event.get("action") or {}
        p = self.params
        return (float(action.get("duration_in_seconds", p.duration_in_seconds)),
                float(action.get("max_duration_in_seconds", p.max_duration_in_seconds)))

    def _on_event(self, event: dict, t: float, index: int) -> bool:
        """Start or extend a clip; True when the event asks this frame to be a keyframe."""
        duration, longest = self._durations(event)
        if self.clip is not None:
            self.info["until"] = max(self.info["until"], event.get("t", t) + duration)
            if event.get("state") == "start":
                self.info["events"].append(_summary(event))
            return False
        if event.get("state") != "start":
            return False  # a rule still matching after its clip hit the cap: no new clip
        target = event.get("t", t) - duration
        if duration > self.ring.seconds and not getattr(self, "_warned", False):
            self._warned = True
            self.log.warning("action.record: pre-roll of %.1f s asked, but the ring keeps %.1f s "
                             "(buffer_seconds)", duration, self.ring.seconds)
        self.info = {"events": [_summary(event)], "rule_name": event.get("rule_name"),
                     "event_t": event.get("t", t), "event_frame": event.get("frame", index),
                     "duration_in_seconds": duration, "max_duration_in_seconds": longest,
                     "until": event.get("t", t) + duration, "pending": target}
        start = self.ring.start(target, self.last_index, self.interval / 2)
        if start is None:
            return True  # no keyframe to start from: this frame becomes one and starts the clip
        self._open(next(self.ring.since(start)))
        for item in self.ring.since(start):
            self._write(item)
        return False

    def _open(self, first: Coded) -> None:
        self.count += 1
        rule = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(self.info["rule_name"]))[:40] or "rule"
        path = self.folder / f"{self.params.prefix}{self.count:04d}_{rule}_f{self.info['event_frame']}.mp4"
        self.clip = ClipFile(path, self.encoder, first)  # type: ignore[arg-type]
        self.info.pop("pending", None)
        self._sidecar(None)

    def _write(self, item: Coded) -> None:
        assert self.clip is not None
        self.clip.write(item)
        self.last_index = item.index

    def _close(self, why: str) -> None:
        assert self.clip is not None
        self.clip.close()
        self._sidecar(why)
        self.clip = None
        self.force_key = True

    def _sidecar(self, ended_by: str | None) -> None:
        clip = self.clip
        assert clip is not None
        info = {k: v for k, v in self.info.items() if k != "until"}
        info.update({
            "file": clip.path.name, "recording": ended_by is None, "ended_by": ended_by,
            "post_roll_until": self.info["until"], "start_t": clip.first.t, "end_t": clip.last.t,
            "first_frame": clip.first.index, "last_frame": clip.last.index, "frames": clip.frames,
        })
        tmp = clip.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info, indent=2, default=str))
        tmp.replace(clip.path.with_suffix(".json"))

    # -- frames ----------------------------------------------------------------------------
    def process(self, image: torch.Tensor, events: Any = None, frames: Any = None) -> None:
        if frames is None:
            return self._encode(host_rgb24(image), self.ctx.tick.t, self.ctx.tick.index, wanted(events, self.params.action))
        count = frames.get("count") if isinstance(frames, dict) else None
        if not isinstance(count, int) or len(frames.get("t") or ()) != count or image.shape[0] != count:
            raise NodeError(f"frames must be the source's {{index, count, t}} for the {image.shape[0]} frames of "
                            f"image, got {frames!r:.200}; connect it to the source that feeds `image`")
        todo, done = list(wanted(events, self.params.action)), 0  # in frame order, as rules emits them
        for i in range(count):
            index, upto = frames["index"] + i, done
            while upto < len(todo) and (i == count - 1 or todo[upto].get("frame", index) <= index):
                upto += 1
            self._encode(host_rgb24(image[i:i + 1]), float(frames["t"][i]), index, todo[done:upto])
            done = upto

    def _encode(self, rgb: Any, t: float, index: int, events: list[dict]) -> None:
        """One frame ``(H, W, 3)`` uint8 at ``t``: its events applied, then encoded and kept."""
        height, width = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
        if self.encoder is None:
            if width < 2 or height < 2:
                raise NodeError(f"a {rgb.shape[1]}x{rgb.shape[0]} frame is too small to encode")
            p = self.params
            self.encoder = Encoder(width, height, fps=p.fps, gop=p.gop, crf=p.crf, preset=p.preset, threads=p.threads)
            self.size = (width, height)
        elif (width, height) != self.size:
            raise NodeError(f"frame {index} is {width}x{height}, but the recording is {self.size[0]}x{self.size[1]} "
                            "(set by the first frame); put an image.resize before it")
        if self.prev_t is not None and t > self.prev_t:
            self.interval = t - self.prev_t
        self.prev_t = t
        extended = False  # a rule matched on this frame: the clip does not end after it
        for event in events:
            extended = True
            self.force_key |= self._on_event(event, t, index)
        key, self.force_key = self.force_key, False
        pts = max(round(t / TIME_BASE), self.last_pts + 1)  # strictly increasing for the encoder
        self.last_pts = pts
        for packet in self.encoder.encode(rgb[:height, :width], pts, key):
            self._frame(Coded(packet, t, pts, index, bool(packet.is_keyframe)), extended)

    def _frame(self, item: Coded, extended: bool) -> None:
        self.ring.add(item)
        if self.clip is None and "pending" in self.info and item.key:
            self._open(item)  # the keyframe this frame was made into starts the clip
        if self.clip is None:
            return
        tol = self.interval / 2
        cap = self.clip.first.t + self.info["max_duration_in_seconds"]
        if item.t > self.info["until"] + tol or item.t >= cap - tol:
            return self._close("max_duration" if item.t >= cap - tol else "post-roll")
        self._write(item)
        after = item.t + self.interval  # where the next frame will be: close now if it is out,
        if after >= cap - tol:          # so that it can be a keyframe that starts the next clip
            self._close("max_duration")
        elif after > self.info["until"] + tol and not extended:
            self._close("post-roll")

    def teardown(self) -> None:
        if getattr(self, "clip", None) is not None:
            self._close("teardown")
        if getattr(self, "encoder", None) is not None:
            self.encoder.close()
            self.encoder = None


def _summary(event: dict) -> dict:
    return {k: event.get(k) for k in ("rule_name", "state", "since", "t", "frame", "tracker_id", "metadata")}
