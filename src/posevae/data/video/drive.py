"""Pose labels from an ordinary video, for ``posevae transfer --poses VIDEO`` (motion transfer).

The video's poses are extracted as ``posevae data from-video`` extracts them (video mode, cached). Every
frame needs a pose here: short gaps are interpolated, and frames in long gaps or before the first frame
with a person hold the nearest pose. The joints are then either normalised to the target person, found in
the first frame by MediaPipe's static mode (:mod:`.normalise`), or, with ``normalise=False``, placed in the
steady person-centred crop that ``from-video`` writes its training frames with. The same crop of the
source frames goes into the side-by-side video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from posevae.data.skeleton import draw_skeleton
from posevae.data.video import track
from posevae.data.video.cache import default_cache_dir, open_store, source_key
from posevae.data.video.decode import VIDEO_SUFFIXES, open_source
from posevae.data.video.estimate import Landmarks, PoseEstimator, map_landmarks
from posevae.data.video.normalise import normalise_poses
from posevae.data.video.pipeline import WORKING_SIDE, PersonTrack, crop_boxes, extract, person_track
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


def target_skeleton(first_frame: Path, H: int, W: int) -> np.ndarray:
    """The joints (J, 2) of the person in ``first_frame``, in the pixels of the frame resized to H x W."""
    with Image.open(first_frame) as im:
        image = im.convert("RGB")
    if min(image.size) < MIN_DETECT_SIDE:  # a model-sized frame (32x64): enlarge it for the detector
        factor = math.ceil(MIN_DETECT_SIDE / min(image.size))
        image = image.resize((image.width * factor, image.height * factor), Image.Resampling.BICUBIC)
    rgb = np.asarray(image)
    with PoseEstimator(static=True) as estimator:
        xy, vis = estimator(rgb)
    joints = map_landmarks(Landmarks(xy[None], vis[None]))[0]
    if not track.has_person(joints[None])[0]:
        raise UserError(
            f"No person was found in the first frame {first_frame}, so the video's poses cannot be "
            "normalised to it: pass --no-normalise, or a first frame that shows the person."
        )
    return joints * np.array([W / rgb.shape[1], H / rgb.shape[0]], np.float32)


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
) -> DrivenPoses:
    """Pose labels (and the cropped source frames) of the first ``limit`` frames of ``video`` at H x W."""
    video, first_frame = Path(video), Path(first_frame)
    source = open_source(video)
    target = target_skeleton(first_frame, H, W) if normalise else None  # before the slow part: it may fail
    cache = default_cache_dir() if cache_dir is None else cache_dir
    with open_store(cache, source_key(source, None, WORKING_SIDE)) as store:
        ex = extract(source, store, fps=None, max_side=WORKING_SIDE, progress=progress)
        person = person_track(ex.landmarks, ex.fps, MAX_GAP_S, 0.5)
        if not person.segments:
            raise UserError(
                f"No person was found in any of the {len(person.found)} frames of {video}: pass a video "
                "in which one person is in view, or a folder of pose images."
            )
        joints = _hold_outside(person)[:limit]
        hold = PersonTrack(joints, person.found[:limit], [(0, len(joints))])
        boxes = crop_boxes(hold, ex.frames.shape[2], ex.frames.shape[1], H, W, SMOOTH_S * ex.fps)
        crops = np.stack([track.crop(ex.frames[t], boxes[t], H, W) for t in range(len(joints))])
    if target is not None:
        first_seen = int(np.flatnonzero(person.found)[0])
        placed = normalise_poses(joints, person.joints[first_seen], target, str(video))
    else:
        placed = track.to_crop(joints, boxes, H, W)
    labels = np.stack([np.asarray(draw_skeleton(kp, W, H)) for kp in placed])
    info = {
        "detection_rate": round(person.detection_rate, 4),
        "frames": len(person.found),
        "normalised": normalise,
        "extraction_fps": round(len(person.found) / ex.seconds, 1) if ex.seconds else None,
        "from_cache": ex.cached,
    }
    return DrivenPoses(labels, crops, info)
