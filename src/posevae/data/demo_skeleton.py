"""Keypoints of pybullet's humanoid and the OpenPose-style skeleton images drawn from them.

The keypoints are points of the humanoid's links (``URDF_MAINTAIN_LINK_ORDER`` link indices): a joint is
the link frame's origin (``getLinkState(...)[4]``); the head is the centre of the head sphere; a toe is
the front of the foot box. :data:`EXTENT_POINTS` adds points the camera must keep in frame (top of the
head), which are not keypoints.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

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
JOINT_NAMES = tuple(k[0] for k in KEYPOINTS)
_IDX = {name: i for i, name in enumerate(JOINT_NAMES)}

# limbs in drawing order (later ones are drawn on top), each with its own OpenPose palette colour
LIMBS = (
    ("chest", "pelvis"),
    ("neck", "chest"),
    ("pelvis", "right_hip"),
    ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
    ("right_ankle", "right_toe"),
    ("pelvis", "left_hip"),
    ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"),
    ("left_ankle", "left_toe"),
    ("neck", "head"),
    ("neck", "right_shoulder"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
    ("neck", "left_shoulder"),
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
)
LIMB_PAIRS = tuple((_IDX[a], _IDX[b]) for a, b in LIMBS)
# OpenPose's 18-colour palette, spread over our limbs: one distinct colour each
_PALETTE = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
LIMB_COLORS = (
    (255, 0, 85),  # chest-pelvis
    (255, 0, 0),  # neck-chest
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255),  # right leg
    (0, 85, 255), (0, 0, 255), (85, 0, 255), (170, 0, 255),  # left leg
    (255, 0, 255),  # head
    (255, 85, 0), (255, 170, 0), (255, 255, 0),  # right arm
    (170, 255, 0), (85, 255, 0), (255, 0, 170),  # left arm
)  # fmt: skip
JOINT_COLORS = tuple(_PALETTE[i % len(_PALETTE)] for i in range(len(KEYPOINTS)))
assert len(LIMB_COLORS) == len(LIMBS)

LINKS_NEEDED = tuple(sorted({k[1] for k in KEYPOINTS}))


def keypoint_spec() -> dict:
    """What ``keypoints.json`` holds: joint names, limb pairs (indices) and their label colours."""
    return {
        "joints": list(JOINT_NAMES),
        "limbs": [list(p) for p in LIMB_PAIRS],
        "limb_names": [f"{a}-{b}" for a, b in LIMBS],
        "limb_colors": [list(c) for c in LIMB_COLORS],
        "joint_colors": [list(c) for c in JOINT_COLORS],
        "coords": "pixel (x, y) of the full-size frames, x to the right, y down, pixel centres at +0.5",
    }


def _rotate(q, v) -> tuple[float, float, float]:
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
        kp[i] = pos if off is None else pos + _rotate(orn, off)
    head = kp[_IDX["head"]]
    extra = np.array([head + [0, HEAD_RADIUS, 0], head - [0, HEAD_RADIUS, 0]])
    return kp, extra


def line_width(height: int) -> int:
    return max(1, round(height / 32))


def draw_skeleton(kp_xy: np.ndarray, width: int, height: int) -> Image.Image:
    """An RGB image, black, with each limb a line of its own colour and a dot on every joint."""
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    lw = line_width(height)
    pts = [(float(x) - 0.5, float(y) - 0.5) for x, y in kp_xy]  # PIL draws at integer pixel centres
    for (a, b), col in zip(LIMB_PAIRS, LIMB_COLORS):
        draw.line([pts[a], pts[b]], fill=col, width=lw)
    r = max(1.0, lw * 0.6)
    for (x, y), col in zip(pts, JOINT_COLORS):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=col)
    return img
