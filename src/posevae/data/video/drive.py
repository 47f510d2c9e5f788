"""Pose labels from an ordinary video, for ``posevae transfer --poses VIDEO`` (motion transfer).

The video's poses are extracted as ``posevae data from-video`` extracts them (video mode, cached). Every
frame needs a pose here: short gaps are interpolated, and frames in long gaps or before the first frame
with a person hold the nearest pose. The joints are then either normalised to the target person
(Everybody Dance Now's global pose normalisation, :mod:`.normalise`: the target measured over its
dataset's keypoints when the first frame is one of a posevae dataset, else found in the first frame by
MediaPipe's static mode), or, with ``normalise=False``, placed in the steady person-centred crop that
``from-video`` writes its training frames with. The same crop of the source frames goes into the side-by-side
video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from posevae.config import SkeletonName
from posevae.data.skeleton import draw_skeleton
from posevae.data.video import track
from posevae.data.video.decode import VIDEO_SUFFIXES, open_source
from posevae.data.video.estimate import Landmarks, PoseEstimator, map_landmarks
from posevae.data.video.normalise import normalise_poses
from posevae.data.video.pipeline import WORKING_SIDE, PersonTrack, crop_boxes, extract, person_track
from posevae.data.video.store import default_store_dir, open_store, source_key
from posevae.errors import UserError

BLACK_LEVEL = 12  # a pixel whose channels are all at most this is black
POSE_IMAGE_BLACK = 0.8  # a frame at least this black is a drawn skeleton, not a filmed person
MAX_GAP_S = 0.5
SMOOTH_S = 0.25
MIN_DETECT_SIDE = 256  # MediaPipe's detector works at 224-256 px


@dataclass
class DrivenPoses:
    labels: np.ndarray  # (N, H, W, 3) uint8: the pose labels that drive the model
    source: np.ndarray  # (N, H, W, 3) uint8: the source video, cropped around its person
    info: dict  # detection rate, normalisation, extraction speed


def _first_frame(path: Path) -> np.ndarray | None:
    """A video's first frame, (H, W, 3) uint8, with OpenCV or else imageio-ffmpeg; None if neither can."""
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        capture = cv2.VideoCapture(str(path))
        try:
            ok, frame = capture.read() if capture.isOpened() else (False, None)
        finally:
            capture.release()
        return frame if ok else None  # BGR: the order does not matter for a black level
    try:
        import imageio_ffmpeg

        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        try:
            width, height = next(reader)["size"]
            return np.frombuffer(next(reader), np.uint8).reshape(height, width, 3)
        finally:
            reader.close()
    except (ImportError, OSError, RuntimeError, StopIteration, ValueError, KeyError):  # the reader of pose
        # images then says what is wrong
        return None


def looks_like_pose_images(path: Path) -> bool | None:
    """Whether the video's first frame is a drawn skeleton (mostly black); None if it cannot be read."""
    frame = _first_frame(path)
    if frame is None:
        return None
    return bool((frame.max(axis=2) <= BLACK_LEVEL).mean() >= POSE_IMAGE_BLACK)


def is_person_video(path: Path) -> bool:
    """The auto rule of ``transfer --poses``: a video file that is not a pose rendering."""
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES and looks_like_pose_images(path) is False


def _hold_outside(person: PersonTrack) -> np.ndarray:
    """Joints with each frame outside the segments taking the pose of the last segment frame before it (or,
    before the first segment, of its first frame)."""
    n = len(person.found)
    inside = np.zeros(n, bool)
    for a, b in person.segments:
        inside[a:b] = True
    t = np.arange(n)
    last = np.maximum.accumulate(np.where(inside, t, -1))
    source = np.where(last >= 0, last, person.segments[0][0])
    return person.joints[source]


def _dataset_root(image: Path) -> Path | None:
    """The posevae dataset (demo or from-video layout: keypoints.json and train/train_keypoints.npy) that
    ``image`` lies in, looking up to four folders up; None if it lies in none."""
    for folder in list(image.resolve().parents)[:4]:
        if (folder / "keypoints.json").is_file() and (folder / "train" / "train_keypoints.npy").is_file():
            return folder
    return None


def target_joints(
    first_frame: Path, skeleton: SkeletonName = "demo"
) -> tuple[np.ndarray, tuple[int, int]]:
    """The target person's joints (M, J, 2) in the pixels of ``first_frame``, and its size (width, height).

    From the keypoints of its dataset's training frames when the frame is one of a posevae dataset (the
    person's whole range of positions, as Everybody Dance Now measures its target video), else found by
    MediaPipe's static mode in the one frame (M = 1)."""
    with Image.open(first_frame) as im:
        image = im.convert("RGB")
    root = _dataset_root(first_frame)
    if root is not None:
        try:
            joints = np.load(root / "train" / "train_keypoints.npy", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise UserError(f"Cannot read {root / 'train' / 'train_keypoints.npy'} ({err}): it is corrupt; "
                            "write the dataset again, or pass --no-normalise.") from None
        if joints.ndim == 3 and joints.shape[2] == 2 and len(joints):
            return joints.astype(np.float32), image.size
    factor = math.ceil(MIN_DETECT_SIDE / min(image.size)) if min(image.size) < MIN_DETECT_SIDE else 1
    detect = image.resize((image.width * factor, image.height * factor), Image.Resampling.BICUBIC)
    with PoseEstimator(static=True) as estimator:  # a model-sized frame (32x64) is enlarged for the detector
        xy, vis = estimator(np.asarray(detect))
    joints = map_landmarks(Landmarks(xy[None], vis[None]), skeleton=skeleton)
    if not track.has_person(joints)[0]:
        raise UserError(
            f"No person was found in the first frame {first_frame}, so the video's poses cannot be "
            "normalised to it: pass --no-normalise, or a first frame that shows the person."
        )
    return joints / factor, image.size


def poses_from_video(
    video: str | Path,
    first_frame: str | Path,
    H: int,
    W: int,
    *,
    normalise: bool = True,
    limit: int | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    skeleton: SkeletonName = "demo",
) -> DrivenPoses:
    """Pose labels (and the cropped source frames) of the first ``limit`` frames of ``video`` at H x W."""
    video, first_frame = Path(video), Path(first_frame)
    source = open_source(video)
    target = target_joints(first_frame, skeleton) if normalise else None  # before the slow part: it may fail
    cache = default_store_dir() if cache_dir is None else cache_dir
    with open_store(cache, source_key(source, None, WORKING_SIDE)) as store:
        ex = extract(source, store, fps=None, max_side=WORKING_SIDE, progress=progress)
        person = person_track(ex.landmarks, ex.fps, MAX_GAP_S, 0.5, skeleton=skeleton)
        if not person.segments:
            raise UserError(
                f"No person was found in any of the {len(person.found)} frames of {video}: pass a video "
                "in which one person is in view, or a folder of pose images."
            )
        joints = _hold_outside(person)[:limit]
        hold = PersonTrack(joints, person.found[:limit], [(0, len(joints))])
        boxes = crop_boxes(hold, ex.frames.shape[2], ex.frames.shape[1], H, W, SMOOTH_S * ex.fps)
        crops = np.stack([track.crop(ex.frames[t], boxes[t], H, W) for t in range(len(joints))])
    if target is not None:  # mapped into the first frame's pixels, then resized with it to the model's
        target_kp, (width, height) = target
        to_model = np.array([W / width, H / height], np.float32)
        placed = normalise_poses(joints, target_kp, str(video)) * to_model
    else:
        placed = track.to_crop(joints, boxes, H, W)
    labels = np.stack([np.asarray(draw_skeleton(kp, W, H, skeleton)) for kp in placed])
    info = {
        "detection_rate": round(person.detection_rate, 4),
        "frames": len(person.found),
        "normalised": normalise,
        "normalised_to": (None if target is None else "the first frame's person" if len(target[0]) == 1
                          else f"the keypoints of {len(target[0])} training frames of the first frame's "
                          "dataset"),
        "extraction_fps": round(len(person.found) / ex.seconds, 1) if ex.seconds else None,
        "from_cache": ex.cached,
    }
    return DrivenPoses(labels, crops, info)
