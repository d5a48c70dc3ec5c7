"""``output.preview``: show frames in a window (pygame-ce / SDL2)."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from concurrent.futures import Future
from typing import Annotated

from flowml.lazy import lazy_import
np = lazy_import("numpy")
torch = lazy_import("torch")

import flowml
from flowml import IMAGE, Field, Input, Node, NodeError

Pixels = Annotated[int, Field(ge=16, le=16384)]
HEADLESS_DRIVERS = {"offscreen", "dummy", "kmsdrm", "evdev"}  # SDL drivers that need no desktop
IDLE_S = 1 / 60  # the window answers the desktop (moves, resizes, close) this often without frames


def missing_display() -> str | None:
    """Why no window can be opened here, or None."""
    if sys.platform == "darwin":
        return ("not supported on macOS: windows there must be made on the process's main thread, "
                "which runs flowml's dispatcher; use output.syphon or output.ndi with a viewer")
    if sys.platform.startswith("win"):
        return None
    if os.environ.get("SDL_VIDEODRIVER", "").lower() in HEADLESS_DRIVERS:
        return None
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return ("needs a display: neither DISPLAY nor WAYLAND_DISPLAY is set (a headless machine, "
                "an ssh session without -X); run it on a desktop, or send the frames to "
                "output.ndi or output.video instead")
    return None


class PreviewWindow(Node):
    """Show frames in a desktop window (Linux X11/Wayland, Windows).

    ``image`` ``(B, C, H, W)`` in [0, 1]: batch item 0 is shown (the graph hands it over as
    uint8 on the host). The window is ``size`` big (default: the first frame's size), or
    ``fullscreen``; frames are scaled to fit. It lives on a thread of its own, so it stays
    responsive (moves, resizes) while the graph is paused, and the graph never waits for the
    screen: the newest frame wins. Closing the window stops showing frames; the graph runs on.
    Where there is no display, graph validation says so.
    """

    type_name = "output.preview"
    inputs = (Input("image", IMAGE, "(B, C, H, W); item 0 is shown", uint8=True),)
    blocking = True

    class Params(flowml.Params):
        title: str | None = Field(None, description="window title; none: flowml: <node id>")
        size: tuple[Pixels, Pixels] | None = Field(None, description="[width, height]; none: the first frame's")
        fullscreen: bool = Field(False, description="cover the screen")

    @classmethod
    def unavailable(cls) -> str | None:
        if importlib.util.find_spec("pygame") is None:
            return "needs pygame-ce: `pip install pygame-ce`"
        return missing_display()

    def setup(self, ctx: flowml.NodeContext) -> None:
        self.cond = threading.Condition()
        self.pending: np.ndarray | None = None   # the newest frame not shown yet
        self.requests: list[Future] = []         # screenshots wanted (run on the window thread)
        self.stopped = False
        self.closed = False                      # the user closed the window
        self.shown = 0
        self.skipped = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"flowml-{ctx.node_id}-window", daemon=True)
        self.thread.start()

    def process(self, image: torch.Tensor) -> None:
        if self.error is not None:
            raise NodeError(f"preview window failed: {self.error}")
        if not (isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim == 4):
            got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise NodeError(f"expected a (B, H, W, C) uint8 host image, got {got}")
        pixels = image[0]
        channels = pixels.shape[2]
        if channels == 1:
            pixels = pixels.expand(*pixels.shape[:2], 3)
        elif channels == 4:
            pixels = pixels[..., :3]
        elif channels != 3:
            raise NodeError(f"expected 1, 3 or 4 channels, got an image of shape {tuple(image.shape)}")
        with self.cond:
            if self.closed:
                return
            self.skipped += self.pending is not None
            self.pending = np.ascontiguousarray(pixels.numpy())
            self.cond.notify()

    def screenshot(self, timeout: float = 5.0) -> np.ndarray:
        """What the window shows now, ``(H, W, 3)`` uint8 (read on the window's thread)."""
        fut: Future = Future()
        with self.cond:
            self.requests.append(fut)
            self.cond.notify()
        return fut.result(timeout)

    def teardown(self) -> None:
        if not hasattr(self, "thread"):
            return
        with self.cond:
            self.stopped = True
            self.cond.notify()
        self.thread.join(timeout=5)

    # -- the window's thread ---------------------------------------------------------------
    def _run(self) -> None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame

            pygame.display.init()
            try:
                self._loop(pygame)
            finally:
                pygame.display.quit()
        except Exception as exc:  # reported by the next process() call
            self.error = exc
            self.log.error("preview window failed: %s", exc)

    def _loop(self, pygame) -> None:
        screen = None
        while True:
            with self.cond:
                if not (self.stopped or self.pending is not None or self.requests):
                    self.cond.wait(IDLE_S)
                if self.stopped:
                    return
                frame, self.pending = self.pending, None
                requests, self.requests = self.requests, []
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    with self.cond:
                        self.closed, self.pending = True, None
                    self.log.warning("preview window closed: frames are no longer shown")
                    pygame.display.quit()
                    return
            if frame is not None:
                screen = self._show(pygame, screen, frame)
            for fut in requests:
                surface = pygame.display.get_surface()
                fut.set_result(None if surface is None else pygame.surfarray.array3d(surface).swapaxes(0, 1))

    def _show(self, pygame, screen, frame: np.ndarray):
        height, width = frame.shape[:2]
        if screen is None:
            flags = pygame.FULLSCREEN if self.params.fullscreen else pygame.RESIZABLE
            size = (0, 0) if self.params.fullscreen else (self.params.size or (width, height))
            screen = pygame.display.set_mode(size, flags)
            pygame.display.set_caption(self.params.title or f"flowml: {self.ctx.node_id}")
        image = pygame.image.frombuffer(frame, (width, height), "RGB")
        if image.get_size() != screen.get_size():
            image = pygame.transform.smoothscale(image, screen.get_size())
        screen.blit(image, (0, 0))
        pygame.display.flip()
        self.shown += 1
        return screen
