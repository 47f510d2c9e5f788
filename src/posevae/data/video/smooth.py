"""Keypoint smoothing over time: the One Euro filter of Casiez, Roussel and Vogel, "1€ Filter: A Simple
Speed-based Low-pass Filter for Noisy Input in Interactive Systems" (CHI 2012).

Every coordinate of every joint goes through its own first-order low-pass filter whose cutoff follows the
speed: ``cutoff = min_cutoff + beta * |speed|``, the speed (pixels per second) itself low-passed at
``d_cutoff``; frequencies in Hz at the video's frame rate. Slow motion is smoothed hard (little jitter), fast
motion lightly (little lag). Causal: a frame depends on the frames before it only.

Joints are (N, J, 2) pixel (x, y), NaN where a joint is not seen (:mod:`.track`'s convention). A joint not
seen stays NaN and its filter restarts at the next frame it is seen (that frame passes unchanged); a NaN never
spreads to another frame or joint. Filtering runs within each segment (:func:`.track.person_segments`), so
nothing is smoothed across a cut; frames outside the segments pass unchanged. ``beta`` is per pixel per second
of speed, so it depends on the pixel scale: the pipeline filters in the extracted frames' pixels (longer side
``WORKING_SIDE``), where the defaults were measured (``benchmarks/keypoint_jitter.py``, docs/video.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def check_parameter(name: str, value: float, *, positive: bool) -> None:
    """ValueError unless ``value`` is a finite number, > 0 when ``positive``, else >= 0."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        need = "a finite number > 0" if positive else "a finite number >= 0"
        raise ValueError(f"One Euro filter: {name} must be {need}, got {value!r}.")


@dataclass(frozen=True)
class KeypointSmoothing:
    """Parameters of :func:`one_euro` (cutoffs in Hz, ``beta`` in 1 / pixel); checked on construction."""

    min_cutoff: float
    beta: float
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        check_parameter("min_cutoff", self.min_cutoff, positive=True)
        check_parameter("beta", self.beta, positive=False)
        check_parameter("d_cutoff", self.d_cutoff, positive=True)

    def __call__(
        self, joints: np.ndarray, fps: float, segments: Sequence[tuple[int, int]] | None = None
    ) -> np.ndarray:
        return one_euro(joints, fps, self.min_cutoff, self.beta, self.d_cutoff, segments=segments)


def _alpha(cutoff: np.ndarray | float, fps: float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass at ``cutoff`` Hz sampled at ``fps``: 1 / (1 + tau / dt)."""
    return 1.0 / (1.0 + fps / (2.0 * math.pi * cutoff))


def _filter_run(x: np.ndarray, fps: float, min_cutoff: float, beta: float, d_cutoff: float) -> np.ndarray:
    """One Euro over x (M, J, 2) float64, restarting a joint after every frame where it is not seen."""
    seen = np.isfinite(x).all(axis=2)  # (M, J)
    out = x.copy()
    prev = np.zeros(x.shape[1:])  # last filtered position, (J, 2)
    dprev = np.zeros(x.shape[1:])  # last filtered speed
    live = np.zeros(x.shape[1], bool)  # the joint was seen in the frame before
    a_d = _alpha(d_cutoff, fps)
    with np.errstate(invalid="ignore", over="ignore"):  # the NaN of joints not seen are dropped below
        for t in range(len(x)):
            s = seen[t]
            cont = (s & live)[:, None]  # continues its filter; a fresh start passes unchanged
            dx = np.where(cont, (x[t] - prev) * fps, 0.0)
            dx_hat = dprev + a_d * (dx - dprev)
            a = _alpha(min_cutoff + beta * np.abs(dx_hat), fps)
            x_hat = np.where(cont, a * x[t] + (1.0 - a) * prev, x[t])
            out[t] = np.where(s[:, None], x_hat, x[t])
            prev = np.where(s[:, None], x_hat, 0.0)
            dprev = np.where(cont, dx_hat, 0.0)
            live = s
    return out


def one_euro(
    joints: np.ndarray,
    fps: float,
    min_cutoff: float,
    beta: float,
    d_cutoff: float = 1.0,
    *,
    segments: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """``joints`` (N, J, 2) smoothed over time with the One Euro filter (see the module docstring), in the
    input's dtype. ``segments``: half-open [start, end) frame ranges filtered independently (default: the
    whole video as one); frames outside them are returned unchanged. Bad parameters raise ValueError."""
    check_parameter("fps", fps, positive=True)
    check_parameter("min_cutoff", min_cutoff, positive=True)
    check_parameter("beta", beta, positive=False)
    check_parameter("d_cutoff", d_cutoff, positive=True)
    joints = np.asarray(joints)
    if not np.issubdtype(joints.dtype, np.floating):
        joints = joints.astype(np.float64)
    if joints.ndim != 3 or joints.shape[2] != 2:
        raise ValueError(f"One Euro filter: joints must be (N, J, 2), got shape {joints.shape}.")
    n = len(joints)
    out = joints.copy()
    for a, b in [(0, n)] if segments is None else segments:
        if not 0 <= a <= b <= n:
            raise ValueError(f"One Euro filter: segment ({a}, {b}) is not inside the {n} frames.")
        out[a:b] = _filter_run(joints[a:b].astype(np.float64), float(fps), min_cutoff, beta, d_cutoff)
    return out
