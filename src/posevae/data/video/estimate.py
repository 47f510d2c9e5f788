"""Pose estimation with MediaPipe Pose (0.10.21, ``solutions.pose`` at ``model_complexity=1``), and the
mapping of its 33 landmarks onto the 18 joints of posevae's skeletons (:mod:`posevae.data.skeleton`).

MediaPipe 0.10.21 is the last release whose pose weights ship inside the wheel (later releases download
them at run time, which cannot work offline). It is an optional dependency, the ``video`` extra, imported
only when poses are extracted: without it :func:`import_mediapipe` raises one :class:`UserError` that
gives the install command.

Landmark mapping (both sides are the person's own), for the two drawings of :mod:`posevae.data.skeleton`::

    demo:
    head      midpoint of the ears (7, 8); the nose (0) when an ear is not seen
    neck      midpoint of the shoulders (11, 12)          pelvis   midpoint of the hips (23, 24)
    chest     midpoint of pelvis and neck                 right_toe, left_toe   32, 31
    right shoulder, elbow, wrist   12, 14, 16             left  shoulder, elbow, wrist   11, 13, 15
    right hip, knee, ankle         24, 26, 28             left  hip, knee, ankle         23, 25, 27

    openpose (COCO-18):
    nose      0                                           neck     midpoint of the shoulders (11, 12)
    right eye, ear                 5, 8                   left  eye, ear                 2, 7
    right shoulder, elbow, wrist   12, 14, 16             left  shoulder, elbow, wrist   11, 13, 15
    right hip, knee, ankle         24, 26, 28             left  hip, knee, ankle         23, 25, 27

A landmark with visibility below ``min_visibility`` is not seen; a joint made from landmarks is seen only
when all of them are. Joints not seen are NaN: :func:`posevae.data.skeleton.draw_skeleton` leaves them out
with their limbs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from posevae.config import SkeletonName
from posevae.data.skeleton import JOINT_INDEX, JOINT_NAMES, OPENPOSE, get_skeleton
from posevae.errors import UserError

MEDIAPIPE_VERSION = "0.10.21"
MODEL_COMPLEXITY = 1  # the only model whose weights ship in the wheel (0 and 2 are downloaded at run time)
MIN_VISIBILITY = 0.5  # MediaPipe's own drawing threshold
N_LANDMARKS = 33
INSTALL_HINT = (
    'pip install -e ".[video]" (from a posevae checkout; or pip install "posevae[video]"), which installs '
    f"mediapipe=={MEDIAPIPE_VERSION}; it needs Python 3.9-3.12, numpy<2 and protobuf<5. If those pins clash "
    "with your environment, extract in a venv of its own: see the README, section 'Your own video'"
)

# joint -> the MediaPipe landmarks it is the mean of (head and chest are special, see map_landmarks)
_FROM_LANDMARKS: dict[str, tuple[int, ...]] = {
    "neck": (11, 12),
    "right_shoulder": (12,), "right_elbow": (14,), "right_wrist": (16,),
    "left_shoulder": (11,), "left_elbow": (13,), "left_wrist": (15,),
    "right_hip": (24,), "right_knee": (26,), "right_ankle": (28,),
    "left_hip": (23,), "left_knee": (25,), "left_ankle": (27,),
    "pelvis": (23, 24), "right_toe": (32,), "left_toe": (31,),
}  # fmt: skip
_EARS, _NOSE = (7, 8), 0
# the same for the OpenPose COCO-18 joints (every one a mean, no special joint)
_OPENPOSE_FROM_LANDMARKS: dict[str, tuple[int, ...]] = {
    "nose": (0,), "neck": (11, 12),
    "right_shoulder": (12,), "right_elbow": (14,), "right_wrist": (16,),
    "left_shoulder": (11,), "left_elbow": (13,), "left_wrist": (15,),
    "right_hip": (24,), "right_knee": (26,), "right_ankle": (28,),
    "left_hip": (23,), "left_knee": (25,), "left_ankle": (27,),
    "right_eye": (5,), "left_eye": (2,), "right_ear": (8,), "left_ear": (7,),
}  # fmt: skip
assert tuple(_OPENPOSE_FROM_LANDMARKS) == OPENPOSE.joints


def import_mediapipe() -> ModuleType:
    """``mediapipe.python.solutions.pose``, or one :class:`UserError` that says how to install it."""
    if sys.version_info >= (3, 13):
        raise UserError(
            f"Extracting poses needs mediapipe {MEDIAPIPE_VERSION}, which has no wheels for Python "
            f"{sys.version_info.major}.{sys.version_info.minor}: make a Python 3.12 (or older) venv and run "
            f"there: {INSTALL_HINT}."
        )
    try:
        from posevae.data.native_output import quiet_c_output

        with quiet_c_output():  # absl/glog lines from the C++ side on import
            from mediapipe.python.solutions import pose
    except ImportError as err:
        raise UserError(
            f"Extracting poses needs mediapipe {MEDIAPIPE_VERSION}, which cannot be imported here "
            f"({err}): {INSTALL_HINT}."
        ) from None
    return pose


@dataclass
class Landmarks:
    """MediaPipe's landmarks of N frames, in pixels of the frames they were found in."""

    xy: np.ndarray  # (N, 33, 2) float32 pixel (x, y), pixel centres at +0.5; NaN where no person was found
    visibility: np.ndarray  # (N, 33) float32 in [0, 1]; 0 where no person was found

    @property
    def detected(self) -> np.ndarray:  # (N,) bool: a person was found in the frame
        return np.isfinite(self.xy[:, 0, 0])

    def __len__(self) -> int:
        return len(self.xy)


class PoseEstimator:
    """One MediaPipe Pose graph. ``static=False`` (video mode) tracks the person from frame to frame: faster,
    and it finds the person in more frames; ``static=True`` treats every image on its own (photos,
    folders)."""

    def __init__(self, static: bool) -> None:
        pose = import_mediapipe()
        self.static = static
        self._graph: Any = pose.Pose(static_image_mode=static, model_complexity=MODEL_COMPLEXITY)
        self._first = True

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self._graph.close()

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks of one (H, W, 3) uint8 RGB frame: ((33, 2) pixel x, y or NaN, (33,) visibility)."""
        from posevae.data.native_output import quiet_c_output

        h, w = rgb.shape[:2]
        if self._first:  # MediaPipe logs a few warnings on its first frame
            self._first = False
            with quiet_c_output():
                result = self._graph.process(np.ascontiguousarray(rgb, dtype=np.uint8))
        else:
            result = self._graph.process(np.ascontiguousarray(rgb, dtype=np.uint8))
        if result.pose_landmarks is None:
            return np.full((N_LANDMARKS, 2), np.nan, np.float32), np.zeros(N_LANDMARKS, np.float32)
        marks = result.pose_landmarks.landmark
        xy = np.array([(m.x * w, m.y * h) for m in marks], np.float32)
        vis = np.array([m.visibility for m in marks], np.float32)
        return xy, vis


def map_landmarks(
    landmarks: Landmarks, min_visibility: float = MIN_VISIBILITY, skeleton: SkeletonName = "demo"
) -> np.ndarray:
    """The joints (N, 18, 2) of the drawing ``skeleton`` from MediaPipe's landmarks; NaN: a joint not seen
    (see the module doc)."""
    seen_xy = np.where(
        (landmarks.visibility >= min_visibility)[..., None], landmarks.xy, np.nan
    )  # (N, 33, 2)
    if get_skeleton(skeleton).name == "openpose":
        return np.stack(  # a mean is NaN if any of its landmarks is
            [seen_xy[:, list(ids)].mean(axis=1) for ids in _OPENPOSE_FROM_LANDMARKS.values()], axis=1
        ).astype(np.float32)
    joints = np.full((len(landmarks), len(JOINT_NAMES), 2), np.nan, np.float32)
    for name, ids in _FROM_LANDMARKS.items():
        joints[:, JOINT_INDEX[name]] = seen_xy[:, list(ids)].mean(axis=1)  # NaN if any is NaN
    ears = seen_xy[:, list(_EARS)].mean(axis=1)
    ears_seen = np.isfinite(ears).all(axis=1, keepdims=True)
    joints[:, JOINT_INDEX["head"]] = np.where(ears_seen, ears, seen_xy[:, _NOSE])
    neck, pelvis = joints[:, JOINT_INDEX["neck"]], joints[:, JOINT_INDEX["pelvis"]]
    joints[:, JOINT_INDEX["chest"]] = (neck + pelvis) / 2
    return joints
