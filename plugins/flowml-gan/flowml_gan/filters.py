"""StyleGAN3's low-pass filters, designed without scipy (numpy and torch only).

StyleGAN3 (Karras et al. 2021, "Alias-Free Generative Adversarial Networks", section 3 and
appendix C) low-passes every layer with Kaiser-windowed filters: a separable windowed sinc, or
for the rotation-equivariant config R a radially symmetric windowed jinc. NVIDIA designs them
with ``scipy.signal.firwin`` and ``scipy.special.j1``; these are the same textbook formulas
(the Kaiser design rules of Oppenheim & Schafer, "Discrete-Time Signal Processing", 7.6),
written here so the generator needs no scipy. They run once, when a network is built; an
official snapshot carries its filters as buffers anyway.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["kaiser_atten", "kaiser_beta", "kaiser_window", "lowpass_sinc", "lowpass_jinc",
           "design_lowpass_filter"]


def kaiser_atten(numtaps: int, width: float) -> float:
    """Stop-band attenuation (dB) of a Kaiser FIR filter of ``numtaps`` taps whose transition
    band is ``width`` (a fraction of the Nyquist frequency)."""
    return 2.285 * (numtaps - 1) * math.pi * width + 7.95


def kaiser_beta(atten: float) -> float:
    """The Kaiser window's beta for a stop-band attenuation ``atten`` (dB)."""
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def kaiser_window(numtaps: int, beta: float) -> np.ndarray:
    """The symmetric Kaiser window ``(numtaps,)`` float64."""
    if numtaps == 1:
        return np.ones(1)
    n = np.arange(numtaps)
    half = (numtaps - 1) / 2
    return np.i0(beta * np.sqrt(1 - ((n - half) / half) ** 2)) / np.i0(beta)


def lowpass_sinc(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray:
    """Kaiser-windowed sinc low-pass ``(numtaps,)`` float64 with unit DC gain: ``cutoff`` and
    transition ``width`` in the units of the sampling rate ``fs``."""
    nyq = fs / 2
    c = cutoff / nyq
    m = np.arange(numtaps) - (numtaps - 1) / 2
    h = c * np.sinc(c * m)
    h = h * kaiser_window(numtaps, kaiser_beta(kaiser_atten(numtaps, width / nyq)))
    return h / h.sum()


def lowpass_jinc(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray:
    """Radially symmetric low-pass ``(numtaps, numtaps)`` float64, sum 1: the jinc
    ``J1(2 pi fc r) / (pi r)`` times the outer product of a Kaiser window (config R)."""
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    j1 = torch.special.bessel_j1(torch.from_numpy(2 * math.pi * cutoff * r)).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(r > 0, j1 / (math.pi * r), cutoff)  # the limit at r = 0
    w = kaiser_window(numtaps, kaiser_beta(kaiser_atten(numtaps, width / (fs / 2))))
    f = f * np.outer(w, w)
    return f / f.sum()


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float,
                          radial: bool = False) -> torch.Tensor | None:
    """A StyleGAN3 layer's filter as float32: None for one tap (identity), ``(numtaps,)``
    (separable) or ``(numtaps, numtaps)`` with ``radial``."""
    if numtaps < 1:
        raise ValueError(f"a filter needs at least one tap, not {numtaps}")
    if numtaps == 1:
        return None
    f = lowpass_jinc(numtaps, cutoff, width, fs) if radial else lowpass_sinc(numtaps, cutoff, width, fs)
    return torch.as_tensor(f, dtype=torch.float32)
