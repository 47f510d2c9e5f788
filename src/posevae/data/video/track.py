"""From per-frame joints to a steady person-centred crop: gaps, segments, boxes, smoothing, cropping.

All functions are pure (numpy in, numpy out). Conventions: joints (N, J, 2) float pixel (x, y) with pixel
centres at +0.5, NaN where a joint is not seen; a box is (x0, y0, width, height) in the same pixels.

- A frame *has a person* when at least :data:`MIN_JOINTS` joints are seen. A run of frames without one that
  is at most ``max_gap`` frames long, with a person on both sides, is filled by linear interpolation
  between the two neighbouring frames (a joint seen on only one side stays out). Longer runs cut the video
  into *segments*: stretches of frames the splits are made from, so no training clip spans a cut. A gap
  whose neighbours share too few seen joints to fill it (the person turned around) is a cut as well
  (:func:`person_segments`).
- The box holds every seen joint, extended above the head (the head joint sits at ear level) and below
  the ankles, widened or heightened to the output's aspect ratio and enlarged by ``margin``. Its centre and
  size are smoothed over time within each segment (a Gaussian of ``smooth_frames`` standard deviation, no
  lag), so the crop does not jitter; then it slides into the frame where it fits, and where it does not the
  frame is padded with black.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from PIL import Image

from posevae.data.skeleton import HEAD, NECK  # the same joints in both drawings (head or nose, neck)

MIN_JOINTS = 3  # seen joints that make a person (fewer give no box worth the name)
HEAD_ROOM = 0.7  # the top of the head is this many neck-to-head distances above the head joint (ear level)
MARGIN = 0.15  # the crop is this much larger than the person, on every side (a fraction of the size)


def has_person(joints: np.ndarray) -> np.ndarray:
    """(N,) bool: at least MIN_JOINTS joints seen."""
    return np.isfinite(joints).all(axis=2).sum(axis=1) >= MIN_JOINTS


def segments_of(found: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Half-open [start, end) stretches that begin and end with a found frame and have no run of more than
    ``max_gap`` frames without one."""
    idx = np.flatnonzero(found)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]]) + 1
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def fill_gaps(joints: np.ndarray, found: np.ndarray, segments: list[tuple[int, int]]) -> np.ndarray:
    """Joints with every frame without a person inside a segment interpolated from its two neighbours."""
    out = joints.copy()
    for a, b in segments:
        t = np.arange(a, b)
        ok = found[a:b]
        if ok.all():
            continue
        prev = np.maximum.accumulate(np.where(ok, t, a))  # last found frame at or before t
        nxt = np.minimum.accumulate(np.where(ok, t, b - 1)[::-1])[::-1]  # first found frame at or after t
        miss = ~ok
        w = ((t - prev) / np.maximum(nxt - prev, 1))[miss][:, None, None]
        out[t[miss]] = (1 - w) * joints[prev[miss]] + w * joints[nxt[miss]]  # NaN where either side is NaN
    return out


def person_segments(joints: np.ndarray, max_gap: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Joints (N, J, 2) with their short gaps filled, and the segments: stretches in which every frame has a
    person, seen or filled. A frame of a short gap that filling leaves without a person (its neighbours
    share fewer than MIN_JOINTS seen joints) cuts its segment there, as a long gap does."""
    found = has_person(joints)
    filled = fill_gaps(joints, found, segments_of(found, max_gap))
    return filled, segments_of(has_person(filled), 0)


def _extents(joints: np.ndarray) -> np.ndarray:
    """(N, 4) x0, y0, x1, y1 of the seen joints, with room above the head and below the ankles."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a frame with no joint seen gives a NaN box
        x0, y0 = np.nanmin(joints[..., 0], axis=1), np.nanmin(joints[..., 1], axis=1)
        x1, y1 = np.nanmax(joints[..., 0], axis=1), np.nanmax(joints[..., 1], axis=1)
    head, neck = joints[:, HEAD], joints[:, NECK]
    head_len = np.hypot(*(head - neck).T)  # NaN when either is not seen
    body = np.maximum(y1 - y0, x1 - x0)
    top_room = np.where(np.isfinite(head_len), HEAD_ROOM * head_len, 0.12 * body)
    return np.stack([x0, y0 - top_room, x1, y1 + 0.04 * body], axis=1)


def person_boxes(joints: np.ndarray, aspect: float, margin: float = MARGIN) -> np.ndarray:
    """(N, 3) centre x, centre y, height of the box around each frame's person at ``aspect`` = width / height
    (NaN rows where no joint is seen)."""
    x0, y0, x1, y1 = _extents(joints).T
    height = np.maximum(y1 - y0, (x1 - x0) / aspect) * (1 + 2 * margin)
    height = np.maximum(height, 8.0)  # a few joints in a row would give a box of no height
    return np.stack([(x0 + x1) / 2, (y0 + y1) / 2, height], axis=1)


def _gaussian_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter along axis 0 with edge padding (no lag: the kernel is centred), over the finite values
    only: a NaN neither spreads nor counts (the weights of the finite neighbours are renormalised), and a
    value with no finite neighbour within 3 sigma stays NaN."""
    if sigma < 0.01 or len(values) < 2:  # below a hundredth of a frame the neighbours' weights underflow to 0
        return values.copy()
    radius = math.ceil(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    padded = np.pad(values, [(radius, radius)] + [(0, 0)] * (values.ndim - 1), mode="edge")
    seen = np.isfinite(padded)
    out = np.empty(values.shape, np.float64)
    for c in range(values.shape[1]):
        weight = np.convolve(seen[:, c].astype(np.float64), k, mode="valid")
        total = np.convolve(np.where(seen[:, c], padded[:, c], 0.0), k, mode="valid")
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, c] = np.where(weight > 0, total / weight, np.nan)
    return out.astype(values.dtype)


def smooth_boxes(boxes: np.ndarray, segments: list[tuple[int, int]], smooth_frames: float) -> np.ndarray:
    """Boxes (N, 3) smoothed within each segment (never across a cut); the size on a 3x longer scale."""
    out = boxes.copy()
    for a, b in segments:
        out[a:b, :2] = _gaussian_smooth(boxes[a:b, :2], smooth_frames)
        out[a:b, 2:] = _gaussian_smooth(boxes[a:b, 2:], 3 * smooth_frames)
    return out


def place_boxes(boxes: np.ndarray, aspect: float, frame_w: int, frame_h: int) -> np.ndarray:
    """(N, 4) x0, y0, width, height: each box slid into the frame along an axis where it fits there."""
    width, height = boxes[:, 2] * aspect, boxes[:, 2]
    x0, y0 = boxes[:, 0] - width / 2, boxes[:, 1] - height / 2
    x0 = np.where(width <= frame_w, np.clip(x0, 0, frame_w - width), x0)
    y0 = np.where(height <= frame_h, np.clip(y0, 0, frame_h - height), y0)
    return np.stack([x0, y0, width, height], axis=1)


def crop(frame: np.ndarray, box: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """(out_h, out_w, 3) uint8: ``box`` (x0, y0, w, h) of ``frame`` resized with PIL bilinear (the lab
    reader's rule, anti-aliased when shrinking); the parts outside the frame are black."""
    x0, y0, bw, bh = (float(v) for v in box)
    ix0, iy0 = math.floor(x0), math.floor(y0)
    ix1, iy1 = math.ceil(x0 + bw), math.ceil(y0 + bh)
    h, w = frame.shape[:2]
    canvas = np.zeros((iy1 - iy0, ix1 - ix0, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(ix0, 0), max(iy0, 0), min(ix1, w), min(iy1, h)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - iy0 : sy1 - iy0, sx0 - ix0 : sx1 - ix0] = frame[sy0:sy1, sx0:sx1]
    region = (x0 - ix0, y0 - iy0, x0 - ix0 + bw, y0 - iy0 + bh)
    return np.asarray(Image.fromarray(canvas).resize((out_w, out_h), Image.Resampling.BILINEAR, box=region))


def to_crop(joints: np.ndarray, boxes: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Joints (N, J, 2) in the pixels of the crops of ``boxes`` (N, 4) at out_h x out_w."""
    origin = boxes[:, None, :2]
    scale = np.stack([out_w / boxes[:, 2], out_h / boxes[:, 3]], axis=1)[:, None, :]
    return ((joints - origin) * scale).astype(np.float32)
