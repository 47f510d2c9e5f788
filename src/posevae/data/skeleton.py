"""The two 18-joint skeletons posevae draws as pose labels: joint names, limbs, colours, the drawing.

Every label in posevae is drawn by :func:`draw_skeleton`: the demo renderer's (:mod:`.demo.humanoid` gives
the humanoid's keypoints) and those of ``posevae data from-video`` and ``posevae transfer`` (:mod:`posevae.
data.video` maps MediaPipe's landmarks onto these joints). A joint whose coordinates are not finite (NaN:
not seen, or seen with low visibility) is left out, and so is every limb that ends at it. Two drawings
(:data:`SKELETONS`, by :data:`SkeletonName`):

- ``demo`` (:data:`DEMO`): the demo's own skeleton: a head joint between the ears, neck, chest, pelvis and
  toes, one palette colour per limb, lines ``height / 32`` wide.
- ``openpose`` (:data:`OPENPOSE`): the OpenPose COCO-18 body as OpenPose's own CPU renderer draws it, the
  drawing public pose-guided generators (Everybody Dance Now, ControlNet's annotator) are trained on.
  From the repository CMU-Perceptual-Computing-Lab/openpose: the joints, limbs (``POSE_COCO_PAIRS_RENDER``)
  and colours (``POSE_COCO_COLORS_RENDER``) of ``include/openpose/pose/poseParametersRender.hpp``, the
  drawing of ``renderKeypointsCpu`` in ``src/openpose/utilities/keypoint.cpp``: on black, every limb first
  (in the colour of its second joint), then every joint (joint k in colour k); the thickness
  ``t = max(round(sqrt(W * H) / 75 * r), 2)`` with ``r = min(1, max(box_w / W, box_h / H))`` of the seen
  joints' bounding box, lines ``max(1, round(0.75 t))`` wide, joints a circle of radius ``t // 2`` drawn
  with thickness ``t`` (a disc of radius ``t // 2 + t / 2``), filled at radius ``t // 2`` when
  ``r <= 0.05``. Unlike OpenPose, in frames smaller than 150 px (the square root of the area; the model's
  32x64 is 45) the least thickness of 2 px shrinks with the frame, to lines of 1 px and joints of radius 1 at
  32x64: there OpenPose's 2-px rings would cover the limbs of a 20-px person. And a person whose seen joints
  span no area (one joint, or all on one
  horizontal or vertical line) is drawn all the same, and coordinates are not rounded to whole pixels.

Joint indices 0-13 mean the same body parts in both (0 the demo's head or OpenPose's nose, 1 neck, 2-7
shoulders, elbows, wrists, 8-13 hips, knees, ankles; both sides are the person's own): the person tracking
(:mod:`posevae.data.video.track`) and the pose normalisation (:mod:`posevae.data.video.normalise`) rely on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from posevae.config import SKELETON_NAMES, SkeletonName

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Skeleton:
    """One drawing convention: the joints of every keypoints array (N, J, 2), the limbs in drawing order
    (later ones on top), their colours and the joints', and ``sizes``: (line width, joint radius) of one
    drawing from its keypoints (J, 2) and the image's width and height."""

    name: SkeletonName
    joints: tuple[str, ...]
    limbs: tuple[tuple[str, str], ...]
    limb_colors: tuple[RGB, ...]
    joint_colors: tuple[RGB, ...]
    sizes: Callable[[np.ndarray, int, int], tuple[int, float]]

    def __post_init__(self) -> None:
        assert len(self.limb_colors) == len(self.limbs) and len(self.joint_colors) == len(self.joints)
        assert {j for limb in self.limbs for j in limb} <= set(self.joints)

    @property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.joints)}

    @property
    def limb_pairs(self) -> tuple[tuple[int, int], ...]:
        index = self.index
        return tuple((index[a], index[b]) for a, b in self.limbs)

    def draw(self, kp_xy: np.ndarray, width: int, height: int) -> Image.Image:
        """An RGB image, black, with each limb a line of its colour and a dot of its colour on every joint.

        ``kp_xy`` (J, 2) pixel (x, y), pixel centres at +0.5; joints with a non-finite coordinate are left
        out with their limbs.
        """
        img = Image.new("RGB", (width, height))
        draw = ImageDraw.Draw(img)
        xy = np.asarray(kp_xy, dtype=np.float64)
        if xy.shape != (len(self.joints), 2):
            raise ValueError(f"{self.name} draws ({len(self.joints)}, 2) keypoints, not {xy.shape}")
        lw, r = self.sizes(xy, width, height)
        seen = [bool(f.all()) for f in np.isfinite(xy)]  # per joint
        pts = [(float(x) - 0.5, float(y) - 0.5) for x, y in kp_xy]  # PIL draws at integer pixel centres
        for (a, b), col in zip(self.limb_pairs, self.limb_colors, strict=True):
            if seen[a] and seen[b]:
                draw.line([pts[a], pts[b]], fill=col, width=lw)
        for (x, y), col, ok in zip(pts, self.joint_colors, seen, strict=True):
            if ok:
                draw.ellipse([x - r, y - r, x + r, y + r], fill=col)
        return img


# ------------------------------------------------------------------------------------------------ demo

# joint order of every keypoints array (N, J, 2) posevae writes in the demo drawing
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


def line_width(height: int) -> int:
    """The demo drawing's line width."""
    return max(1, round(height / 32))


def _demo_sizes(kp_xy: np.ndarray, width: int, height: int) -> tuple[int, float]:
    lw = line_width(height)
    return lw, max(1.0, lw * 0.6)


DEMO = Skeleton("demo", JOINT_NAMES, LIMBS, LIMB_COLORS, JOINT_COLORS, _demo_sizes)

# ------------------------------------------------------------------------------------ OpenPose COCO-18

# Indices 0-13 are the same body parts as the demo's 0-13 (OpenPose's nose where the demo has its head):
# posevae.data.video.track and .normalise use them for either drawing.
OPENPOSE_JOINT_NAMES = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip
# POSE_COCO_PAIRS_RENDER, in its order
_OPENPOSE_PAIRS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
# POSE_COCO_COLORS_RENDER (RGB): joint k has colour k
OPENPOSE_JOINT_COLORS = (
    (255, 0, 85), (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255),
    (255, 0, 170), (170, 0, 255), (255, 0, 255), (85, 0, 255),
)  # fmt: skip
OPENPOSE_THICKNESS_RATIO = 1 / 75  # renderPoseKeypointsCpu: thicknessCircleRatio
OPENPOSE_LINE_RATIO = 0.75  # thicknessLineRatioWRTCircle
SMALL_FRAME = 150  # sqrt(W * H) below which the strokes shrink with the frame instead of staying at 2 px


def _round(x: float) -> int:
    return math.floor(x + 0.5)  # OpenPose's positiveIntRound (halves up, not to even)


def _openpose_sizes(kp_xy: np.ndarray, width: int, height: int) -> tuple[int, float]:
    seen = np.isfinite(kp_xy).all(axis=1)
    if seen.any():
        box_w, box_h = np.ptp(kp_xy[seen], axis=0)
        ratio = min(1.0, max(float(box_w) / width, float(box_h) / height))
    else:
        ratio = 0.0
    side = math.sqrt(width * height)
    # OpenPose's least thickness is 2 px; below SMALL_FRAME px it shrinks with the frame (to 1-px lines at the
    # model's 32x64, where 2 px joints rings would cover a 20-px person's limbs)
    t: float = max(_round(side * OPENPOSE_THICKNESS_RATIO * ratio), 2 * min(1.0, side / SMALL_FRAME))
    if t < 2:
        return 1, 1.0  # lines 1 px wide, joints discs of radius 1 (as the demo drawing's at that size)
    # cv::circle of radius t // 2 and thickness t (a ring that covers the centre); filled (-1) when tiny
    radius = t // 2 + (t / 2 if ratio > 0.05 else 0.0)
    return max(1, _round(t * OPENPOSE_LINE_RATIO)), radius


OPENPOSE = Skeleton(
    "openpose",
    OPENPOSE_JOINT_NAMES,
    tuple((OPENPOSE_JOINT_NAMES[a], OPENPOSE_JOINT_NAMES[b]) for a, b in _OPENPOSE_PAIRS),
    tuple(OPENPOSE_JOINT_COLORS[b] for _, b in _OPENPOSE_PAIRS),  # a limb has its second joint's colour
    OPENPOSE_JOINT_COLORS,
    _openpose_sizes,
)

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (DEMO, OPENPOSE)}
assert tuple(SKELETONS) == SKELETON_NAMES
assert DEMO.joints[1:14] == OPENPOSE.joints[1:14]  # 0-13: the same body parts (0: head / nose)
# indices that mean the same joint in both drawings (tracking and pose normalisation use only these)
HEAD, NECK, RIGHT_ANKLE, LEFT_ANKLE = 0, 1, 10, 13


def get_skeleton(skeleton: SkeletonName | Skeleton) -> Skeleton:
    """The skeleton of that name (or the skeleton itself); ValueError for an unknown name."""
    if isinstance(skeleton, Skeleton):
        return skeleton
    try:
        return SKELETONS[skeleton]
    except (KeyError, TypeError):
        raise ValueError(f"unknown skeleton {skeleton!r}: one of {', '.join(SKELETON_NAMES)}") from None


def keypoint_spec(skeleton: SkeletonName | Skeleton = "demo") -> dict:
    """What ``keypoints.json`` holds: the drawing's name, joint names, limb pairs (indices) and their label
    colours."""
    s = get_skeleton(skeleton)
    return {
        "skeleton": s.name,
        "joints": list(s.joints),
        "limbs": [list(p) for p in s.limb_pairs],
        "limb_names": [f"{a}-{b}" for a, b in s.limbs],
        "limb_colors": [list(c) for c in s.limb_colors],
        "joint_colors": [list(c) for c in s.joint_colors],
        "coords": "pixel (x, y) of the full-size frames, x to the right, y down, pixel centres at +0.5",
    }


def draw_skeleton(
    kp_xy: np.ndarray, width: int, height: int, skeleton: SkeletonName | Skeleton = "demo"
) -> Image.Image:
    """The pose label of keypoints ``kp_xy`` (J, 2) drawn as ``skeleton`` (see :meth:`Skeleton.draw`)."""
    return get_skeleton(skeleton).draw(kp_xy, width, height)
