"""The 18-joint skeleton posevae draws as pose labels: joint names, limbs, colours, the one drawing function.

Every label in posevae is drawn by :func:`draw_skeleton`: the demo renderer's (:mod:`.demo.skeleton` gives
the humanoid's keypoints) and those of ``posevae data from-video`` (:mod:`posevae.data.video` maps
MediaPipe's landmarks onto these joints). A joint whose coordinates are not finite (NaN: not seen, or seen
with low visibility) is left out, and so is every limb that ends at it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

# joint order of every keypoints array (N, J, 2) posevae writes; both sides are the person's own
JOINT_NAMES = (
    "head", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "pelvis", "chest", "right_toe", "left_toe",
)  # fmt: skip
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

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
LIMB_PAIRS = tuple((JOINT_INDEX[a], JOINT_INDEX[b]) for a, b in LIMBS)
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
JOINT_COLORS = tuple(_PALETTE[i % len(_PALETTE)] for i in range(len(JOINT_NAMES)))
assert len(LIMB_COLORS) == len(LIMBS)


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


def line_width(height: int) -> int:
    return max(1, round(height / 32))


def draw_skeleton(kp_xy: np.ndarray, width: int, height: int) -> Image.Image:
    """An RGB image, black, with each limb a line of its own colour and a dot on every joint.

    ``kp_xy`` (J, 2) pixel (x, y); joints with a non-finite coordinate are left out with their limbs.
    """
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    lw = line_width(height)
    finite = np.isfinite(np.asarray(kp_xy, dtype=np.float64))  # (J, 2)
    seen = [bool(f.all()) for f in finite]  # per joint
    pts = [(float(x) - 0.5, float(y) - 0.5) for x, y in kp_xy]  # PIL draws at integer pixel centres
    for (a, b), col in zip(LIMB_PAIRS, LIMB_COLORS, strict=True):
        if seen[a] and seen[b]:
            draw.line([pts[a], pts[b]], fill=col, width=lw)
    r = max(1.0, lw * 0.6)
    for (x, y), col, ok in zip(pts, JOINT_COLORS, seen, strict=True):
        if ok:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=col)
    return img
