"""Keypoints of pybullet's humanoid; the OpenPose-style skeleton images are drawn by :mod:`.skeleton`.

The keypoints are points of the humanoid's links (``URDF_MAINTAIN_LINK_ORDER`` link indices): a joint is
the link frame's origin (``getLinkState(...)[4]``); the head is the centre of the head sphere; a toe is
the front of the foot box. :data:`EXTENT_POINTS` adds points the camera must keep in frame (top of the
head), which are not keypoints.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# the skeleton and its drawing live in .skeleton, shared with posevae.data.video; re-exported here
from posevae.data.skeleton import (  # noqa: F401
    JOINT_COLORS,
    JOINT_INDEX,
    JOINT_NAMES,
    LIMB_COLORS,
    LIMB_PAIRS,
    LIMBS,
    draw_skeleton,
    keypoint_spec,
    line_width,
)

SCALE = 0.25  # globalScaling the humanoid is loaded with (as in pybullet's DeepMimic env)
HEAD_OFFSET = np.array([0.0, 0.7, 0.0]) * SCALE  # head sphere centre in the neck link frame
HEAD_RADIUS = 0.41 * SCALE
TOE_OFFSET = np.array([0.18 + 0.354, -0.09, 0.0]) * SCALE  # front of the foot box in the ankle link frame

# (name, link index, offset in the link frame)
KEYPOINTS = (
    ("head", 2, HEAD_OFFSET),
    ("neck", 2, None),
    ("right_shoulder", 6, None),
    ("right_elbow", 7, None),
    ("right_wrist", 8, None),
    ("left_shoulder", 12, None),
    ("left_elbow", 13, None),
    ("left_wrist", 14, None),
    ("right_hip", 3, None),
    ("right_knee", 4, None),
    ("right_ankle", 5, None),
    ("left_hip", 9, None),
    ("left_knee", 10, None),
    ("left_ankle", 11, None),
    ("pelvis", 0, None),
    ("chest", 1, None),
    ("right_toe", 5, TOE_OFFSET),
    ("left_toe", 11, TOE_OFFSET),
)
assert tuple(k[0] for k in KEYPOINTS) == JOINT_NAMES  # the humanoid gives the skeleton's joints, in order
_IDX = JOINT_INDEX

LINKS_NEEDED = tuple(sorted({k[1] for k in KEYPOINTS}))


def _rotate(q: Iterable[float], v: Iterable[float]) -> tuple[float, float, float]:
    """Rotate vector v by quaternion q (x, y, z, w); plain floats (this runs for every frame)."""
    x, y, z, w = (float(c) for c in q)
    vx, vy, vz = (float(c) for c in v)
    # t = 2 * cross(q.xyz, v); v' = v + w * t + cross(q.xyz, t)
    tx, ty, tz = 2 * (y * vz - z * vy), 2 * (z * vx - x * vz), 2 * (x * vy - y * vx)
    return (vx + w * tx + (y * tz - z * ty), vy + w * ty + (z * tx - x * tz), vz + w * tz + (x * ty - y * tx))


def keypoints_from_link_states(states: dict[int, tuple]) -> tuple[np.ndarray, np.ndarray]:
    """(keypoints (J, 3), extent points (E, 3)) from ``{link: (frame position, frame orientation)}``."""
    kp = np.empty((len(KEYPOINTS), 3))
    for i, (_, link, off) in enumerate(KEYPOINTS):
        pos, orn = states[link]
        pos = np.asarray(pos, dtype=np.float64)
        kp[i] = pos if off is None else pos + np.asarray(_rotate(orn, off))  # float64, as pos
    head = kp[_IDX["head"]]
    extra = np.array([head + [0, HEAD_RADIUS, 0], head - [0, HEAD_RADIUS, 0]])
    return kp, extra
