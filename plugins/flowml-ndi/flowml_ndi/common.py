"""What both NDI nodes share: the availability check and the loopback discovery config."""

from __future__ import annotations

import importlib.util
import json
import os
from fractions import Fraction
from pathlib import Path

LOOPBACK_CONFIG = {"ndi": {"networks": {"ips": "127.0.0.1", "discovery": ""}}}


def missing_cyndilib() -> str | None:
    """Why NDI nodes cannot run here, or None. Looks for the package without importing it."""
    if importlib.util.find_spec("cyndilib") is None:
        return ("needs the NDI binding: `pip install cyndilib` (its wheels ship the NDI runtime "
                "for Linux, Windows and macOS)")
    return None


def write_loopback_config(folder: str | Path) -> Path:
    """Write ``ndi-config.v1.json`` into ``folder`` so that NDI finds sources on 127.0.0.1
    without an mDNS daemon (containers, CI). The NDI runtime reads it from the folder named
    by ``NDI_CONFIG_DIR`` when it starts, so set that variable before the first NDI call in
    the process (``loopback_env`` does both). Returns the file written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ndi-config.v1.json"
    path.write_text(json.dumps(LOOPBACK_CONFIG))
    return path


def loopback_env(folder: str | Path, env: dict | None = None) -> dict:
    """``env`` (default: this process's) plus ``NDI_CONFIG_DIR`` pointing at a loopback config."""
    write_loopback_config(folder)
    return {**(os.environ if env is None else env), "NDI_CONFIG_DIR": str(Path(folder))}


def ndi_rate(fps: float) -> Fraction:
    """The frame rate announced to receivers, exact: 29.97 is 30000/1001 (NTSC), not 2997/100."""
    for base in (24, 30, 48, 60, 120, 240):
        if abs(fps - base * 1000 / 1001) < 0.005:
            return Fraction(base * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)
