"""Reading the frames of a video file or of a folder of frames, resampled to a frame rate, as RGB uint8.

Video files are decoded with OpenCV (``cv2``, installed with MediaPipe by the ``video`` extra); a folder
holds one image per frame (PNG, JPEG, ...), ordered by the last number in each name (``frame_2.jpg``
before ``frame_10.jpg``) and decoded with PIL. Frames are shrunk (never enlarged) so that their longer side
is at most ``max_side``: pose estimation and the crop work on those (MediaPipe works on 256x256 regions of
interest, so little is lost), and they are what the cache keeps.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from posevae.data.video.estimate import INSTALL_HINT
from posevae.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_HINT = "re-export it as an MP4 (H.264), or pass a folder of frames (0.png, 1.png, ...)"


@dataclass(frozen=True)
class Source:
    """What was given as INPUT: a video file or a folder of frames."""

    path: Path
    kind: str  # "video" or "folder"
    fps: float  # frames per second of the source (a folder's is given by the user)
    n_frames: int  # as the container reports it (a video's count can be off by a few); a folder's exactly
    width: int
    height: int
    files: tuple[Path, ...] = ()  # a folder's frames, in order


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as err:
        raise UserError(
            f"Reading videos needs OpenCV, which comes with mediapipe ({err}): {INSTALL_HINT}."
        ) from None
    return cv2


def _frame_files(folder: Path) -> tuple[Path, ...]:
    images = [
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    if not images:
        raise UserError(
            f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}): pass a folder of frames, one "
            "image per frame named by its number (0.png, 1.png, ...), or a video file."
        )
    numbered = {p: re.findall(r"\d+", p.stem) for p in images}
    unnumbered = sorted(p.name for p, digits in numbered.items() if not digits)
    if unnumbered:
        raise UserError(
            f"Cannot order the frames in {folder}: {', '.join(unnumbered[:5])} hold(s) no number; "
            "name every frame by its number (0.png, 1.png, ...) or remove the others."
        )
    ordered = sorted(images, key=lambda p: (int(numbered[p][-1]), p.name))
    return tuple(ordered)


def _open_video(path: Path) -> Any:
    cv2 = _cv2()
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read() if capture.isOpened() else (False, None)
    if not ok or frame is None:
        capture.release()
        raise UserError(
            f"Cannot read a video stream from {path}: it has no video stream, is corrupt, or is in "
            f"a format OpenCV's ffmpeg cannot decode; {VIDEO_HINT}."
        )
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    return capture


def open_source(path: str | Path, folder_fps: float = 30.0) -> Source:
    """Check INPUT and describe it; every problem is a :class:`UserError` naming the file and the fix."""
    path = Path(path)
    if not path.exists():
        raise UserError(
            f"{path} does not exist: pass a video file ({', '.join(VIDEO_SUFFIXES)}) or a folder of frames."
        )
    if not os.access(path, os.R_OK):
        raise UserError(f"{path} cannot be read (permission denied): make it readable (chmod +r) or copy it.")
    if path.is_dir():
        files = _frame_files(path)
        width, height = _image(files[0]).size
        return Source(path, "folder", float(folder_fps), len(files), width, height, files)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(
            f"{path} is not a video file ({', '.join(VIDEO_SUFFIXES)}) nor a folder of frames: {VIDEO_HINT}."
        )
    cv2 = _cv2()
    capture = _open_video(path)
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        n = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        width, height = (
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        capture.release()
    if not (math.isfinite(fps) and 1 <= fps <= 1000):
        fps = 30.0  # some containers store no rate; 30 fps is the common one
    return Source(path, "video", fps, max(n, 1), width, height)


def _image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(
            f"Cannot read the frame {path} ({err.__class__.__name__}): it is corrupt or not an image; "
            "re-export it or remove it from the folder."
        ) from None


def working_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) shrunk to a longer side of at most ``max_side``, aspect kept; never enlarged."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _raw_frames(source: Source) -> Iterator[np.ndarray]:
    if source.kind == "folder":
        for f in source.files:
            image = _image(f)
            if image.size != (source.width, source.height):
                raise UserError(
                    f"The frame {f} is {image.size[0]}x{image.size[1]} pixels, the first frame of "
                    f"{source.path} {source.width}x{source.height}: every frame of a folder must "
                    "have one size; resize or remove it."
                )
            yield np.asarray(image)
        return
    cv2 = _cv2()
    capture = _open_video(source.path)
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def resampled(frames: Iterator[np.ndarray], source_fps: float, fps: float | None) -> Iterator[np.ndarray]:
    """The frames at ``fps`` (None: unchanged): output frame k is the source frame nearest to time k / fps."""
    if fps is None or abs(fps - source_fps) < 1e-6:
        yield from frames
        return
    step = source_fps / fps  # source frames per output frame
    k = 0
    for i, frame in enumerate(frames):
        while (
            round(k * step) == i
        ):  # nearest source frame of output k (a frame repeats when fps > source_fps)
            yield frame
            k += 1


def read_frames(source: Source, fps: float | None, max_side: int) -> Iterator[np.ndarray]:
    """(h, w, 3) uint8 RGB frames of ``source`` at ``fps``, shrunk to a longer side of <= ``max_side``."""
    cv2 = _cv2() if source.kind == "video" else None
    w, h = working_size(source.width, source.height, max_side)
    for frame in resampled(_raw_frames(source), source.fps, fps):
        if (w, h) != (frame.shape[1], frame.shape[0]):
            if cv2 is not None:
                frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
            else:
                frame = np.asarray(Image.fromarray(frame).resize((w, h), Image.Resampling.BILINEAR))
        yield np.ascontiguousarray(frame)


def expected_frames(source: Source, fps: float | None) -> int:
    """About how many frames :func:`read_frames` gives (for progress bars)."""
    return source.n_frames if fps is None else max(1, round(source.n_frames * fps / source.fps))
