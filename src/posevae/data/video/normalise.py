"""Pose normalisation for motion transfer: Everybody Dance Now's global pose normalisation (Chan et al.,
2019).

The source dancer's joints are mapped into the target person's frame, frame by frame, by one isotropic scale
and a translation that depend on where the source stands: near the camera its feet are low in the frame and
it looks tall, far away the feet are higher and it looks small. As EDN's authors' code does it
(carolineec/EverybodyDanceNow, ``data_prep/graph_posenorm.py``), for each video:

* per frame: the *ankle value*, the y of the lower ankle seen (image y points down), and the *height*, the
  distance from the head joint to the midpoint of the ankles seen. The arms never enter it;
* *close* = the largest ankle value, *median* its median, *far* = the highest ankle (smallest value) within
  ``median_frac`` x (close - median) above the median (EDN's robust far end, ``median_frac`` 0.5);
* the heights at the two ends (EDN: the largest height among the frames within 5% of the range of each end;
  that is biased by the window's width when the person walks, so here: a line through the tallest frame of
  each of eight stretches of ankle values between far and close, the standing height at each depth, read at
  the two ends);
* if the target's close-far interval is wider than the source's (in units of each one's height), it is
  narrowed about its middle to the source's width (EDN's range match).

Per source frame with ankle value a, p = (a - far) / (close - far) of the source (not clamped: a frame
nearer or farther than the ends extrapolates), the target's ankle line lies at the same p of the target's
interval, and the scale is the target's height at p over the source's height at p. EDN interpolates the scale
itself linearly in p; here the heights are interpolated: the same at both ends and exact in between for a
pinhole camera over a level floor (where a person's image height is linear in the ankles' image y), which
EDN's linear scale is not (12.5% off midway for a source that doubles in height). A frame without the head
or an ankle reuses the last frame's transform, as EDN does.

A video that does not move in depth (close - far below 5% of its height), such as a target given by one first
frame, counts as standing in one place (its height: the tallest frame's). A source standing in one place is
set at the target's median depth; when either stands in one place, the ankle line follows the source's own
ankle motion (jumps, steps) at the frame's scale around the target's median ankle line.

Horizontally, EDN scales about the middle of a frame the two videos share; here the frames differ, so x is
scaled about each person's median neck x (the source's motion around where it stands is kept, placed where
the target stands). All of it happens in the pixels of the target's own frame, one scale for x and y; the
caller resizes the result with the first frame to the model's size (:mod:`.drive`).

When the head and an ankle are never seen together in one of the videos (legs out of the frame, a head and
shoulders shot), the scale is the median over the bones both videos see of the ratio of their lengths (each
bone's 90th percentile over the frames: foreshortening only shortens a bone), bones of the head, shoulders,
torso and legs, never the arms; and the translation maps the median neck onto the target's.

Joint indices 0-13 are the same body parts in both drawings posevae knows (demo and OpenPose COCO-18):
0 the head joint (head or nose), 1 neck, 2-7 shoulders, elbows, wrists, 8-13 hips, knees, ankles.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from posevae.data.skeleton import HEAD, LEFT_ANKLE, NECK, RIGHT_ANKLE
from posevae.errors import UserError

# bones of head, shoulders, torso sides and legs (never the arms): (joint, joint) in the shared indices 0-13
BODY_BONES = ((1, 0), (1, 2), (1, 5), (2, 8), (5, 11), (8, 11), (8, 9), (9, 10), (11, 12), (12, 13))
MEDIAN_FRAC = 0.5  # EDN's far end: the highest ankle within this fraction of (close - median) above median
DEPTH_BINS = 8  # stretches of ankle values between far and close whose tallest frames give the heights
STILL = 0.05  # a video whose ankle range is below this fraction of its height stands in one place


@dataclass(frozen=True)
class PlacementStats:
    """Where a person stands and how tall it looks there, over one video (or one frame)."""

    close: float  # ankle value (image y of the lower ankle) nearest the camera
    far: float  # ankle value farthest from the camera; == close when the person stands in one place
    median: float  # the median ankle value: where the person mostly stands
    height_close: float  # head-to-ankles height at close
    height_far: float
    neck_x: float  # median x of the neck

    @property
    def still(self) -> bool:
        return self.close - self.far <= 0.0

    def position(self, ankle: np.ndarray | float) -> np.ndarray:
        """p: 0 at far, 1 at close, linear in the ankle value (0 everywhere for a person standing still)."""
        if self.still:
            return np.zeros_like(np.asarray(ankle, np.float64))
        return (np.asarray(ankle, np.float64) - self.far) / (self.close - self.far)

    def height(self, p: np.ndarray) -> np.ndarray:
        """The height at position p, linear between the two ends."""
        return self.height_far + p * (self.height_close - self.height_far)


def frame_stats(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of joints (N, J, 2): (ankle value (N,), height (N,)); NaN where the head or both ankles are
    not seen. Ankle value: the y of the lower ankle seen; height: head to the midpoint of the ankles seen."""
    ankles = joints[:, [RIGHT_ANKLE, LEFT_ANKLE]]  # (N, 2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN frames
        ankle_value = np.nanmax(ankles[..., 1], axis=1)
        ankle_mid = np.nanmean(ankles, axis=1)  # (N, 2)
    height = np.hypot(*(joints[:, HEAD] - ankle_mid).T)
    valid = np.isfinite(height) & np.isfinite(ankle_value)
    return np.where(valid, ankle_value, np.nan), np.where(valid, height, np.nan)


def _end_heights(
    ankle: np.ndarray, height: np.ndarray, far: float, close: float
) -> tuple[float, float] | None:
    """The standing heights at close and far: a line through the largest height of each of DEPTH_BINS
    stretches of ankle values between far and close, read at the ends; None with fewer than two stretches."""
    inside = (ankle >= far) & (ankle <= close)
    bins = np.minimum(((ankle[inside] - far) / (close - far) * DEPTH_BINS).astype(int), DEPTH_BINS - 1)
    points = [np.flatnonzero(inside)[bins == b] for b in np.unique(bins)]
    tallest = np.array([i[np.argmax(height[i])] for i in points])
    if len(tallest) < 2:
        return None
    slope, intercept = np.polyfit(ankle[tallest], height[tallest], 1)
    ends = intercept + slope * close, intercept + slope * far
    return (float(ends[0]), float(ends[1])) if min(ends) > 0 else None


def _median_neck(joints: np.ndarray) -> np.ndarray:
    """(2,) the median neck over the frames; the median of every joint when the neck is never seen."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        neck = np.nanmedian(joints[:, NECK], axis=0)
        return neck if np.isfinite(neck).all() else np.nanmedian(joints.reshape(-1, 2), axis=0)


def placement_stats(joints: np.ndarray, median_frac: float = MEDIAN_FRAC) -> PlacementStats | None:
    """The statistics of a video's joints (N, J, 2); None when no frame sees the head and an ankle."""
    ankle, height = frame_stats(joints)
    ok = np.isfinite(ankle)
    if not ok.any():
        return None
    ankle, height = ankle[ok], height[ok]
    close, median = float(ankle.max()), float(np.median(ankle))
    above = median - ankle
    near_median = above[(above > 0) & (above < median_frac * (close - median))]
    far = median - float(near_median.max()) if near_median.size else median
    neck_x = float(_median_neck(joints)[0])
    tallest = float(height.max())
    ends = _end_heights(ankle, height, far, close) if close - far >= STILL * tallest else None
    if ends is None:  # no motion in depth: one place
        return PlacementStats(close, close, median, tallest, tallest, neck_x)
    return PlacementStats(close, far, median, ends[0], ends[1], neck_x)


def _match_range(source: PlacementStats, target: PlacementStats) -> PlacementStats:
    """EDN's range match: a target interval wider than the source's (each in units of its own height) is
    narrowed about its middle to the source's width."""
    source_width = (source.close - source.far) / source.height_close
    target_width = (target.close - target.far) / target.height_close
    if source.still or target.still or target_width <= source_width:
        return target
    middle, half = (target.close + target.far) / 2, source_width * target.height_close / 2
    heights = target.height(target.position(np.array([middle + half, middle - half])))
    return PlacementStats(middle + half, middle - half, target.median, float(heights[0]), float(heights[1]),
                          target.neck_x)


def _held(values: np.ndarray) -> np.ndarray:
    """Each NaN replaced by the last finite value before it (the first finite one before any), as EDN reuses
    the last frame's transform."""
    t = np.arange(len(values))
    last = np.maximum.accumulate(np.where(np.isfinite(values), t, -1))
    first = int(np.flatnonzero(np.isfinite(values))[0])
    return values[np.where(last >= 0, last, first)]


def placement(
    ankle: np.ndarray, source: PlacementStats, target: PlacementStats
) -> tuple[np.ndarray, np.ndarray]:
    """Per source frame (N,) of ankle values (every one finite, :func:`_held`): the scale, and the y the
    frame's ankle line maps to in the target's frame."""
    target = _match_range(source, target)
    # a source standing in one place is placed where the target mostly stands
    p = np.full(len(ankle), float(target.position(target.median))) if source.still else source.position(ankle)
    scale = target.height(p) / np.maximum(source.height(p), 1e-6 * source.height_close)
    if source.still or target.still:  # the ankle line follows the source's own motion at that scale
        return scale, target.median + scale * (ankle - source.median)
    return scale, target.far + p * (target.close - target.far)


def bone_scale(source_joints: np.ndarray, target_joints: np.ndarray) -> float:
    """The median over the body bones seen in both of the ratio target / source of their lengths (each the
    90th percentile over its frames); ValueError when the two share no bone."""
    ratios = []
    for a, b in BODY_BONES:
        lengths = [np.hypot(*(j[:, a] - j[:, b]).T) for j in (source_joints, target_joints)]
        seen = [x[np.isfinite(x) & (x > 0)] for x in lengths]
        if all(s.size for s in seen):
            ratios.append(np.percentile(seen[1], 90) / np.percentile(seen[0], 90))
    if not ratios:
        raise ValueError("the two share no bone of the head, shoulders, torso or legs that is seen")
    return float(np.median(ratios))


def normalise_poses(source_joints: np.ndarray, target_joints: np.ndarray, where: str) -> np.ndarray:
    """The source's joints (N, J, 2) mapped into the target's frame (see the module doc). ``target_joints``
    (M, J, 2): the target person's joints in its frame's pixels, over its video or in one frame (M = 1)."""
    source, target = placement_stats(source_joints), placement_stats(target_joints)
    if source is not None and target is not None:
        ankle = _held(frame_stats(source_joints)[0])
        scale, ankle_line = placement(ankle, source, target)
        x = target.neck_x + scale[:, None] * (source_joints[..., 0] - source.neck_x)
        y = ankle_line[:, None] + scale[:, None] * (source_joints[..., 1] - ankle[:, None])
        return np.stack([x, y], axis=-1).astype(np.float32)
    try:
        bones = bone_scale(source_joints, target_joints)
    except ValueError as err:
        raise UserError(
            f"Cannot normalise the poses of {where} to the first frame's person: {err}. Pass --no-normalise, "
            "or a first frame that shows the same body parts as the video."
        ) from None
    anchor_source, anchor_target = _median_neck(source_joints), _median_neck(target_joints)
    return (anchor_target + bones * (source_joints - anchor_source)).astype(np.float32)
