"""``posevae data from-video``: a dataset in the lab layout from a video of one person.

:func:`extract` decodes the frames and finds MediaPipe's landmarks in them (cached); :func:`from_video`
maps them onto the skeleton's joints, fills short gaps, cuts at long ones, crops a steady box around the
person, draws the labels in the chosen drawing (the demo's skeleton or OpenPose's, :mod:`posevae.data.
skeleton`) and writes the splits (:mod:`.layout`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from posevae.config import MODEL_PRESETS, SKELETON_NAMES, SkeletonName
from posevae.data.skeleton import draw_skeleton
from posevae.data.video import track
from posevae.data.video.decode import Source, expected_frames, open_source, read_frames
from posevae.data.video.estimate import (
    MEDIAPIPE_VERSION,
    MIN_VISIBILITY,
    Landmarks,
    PoseEstimator,
    map_landmarks,
)
from posevae.data.video.layout import SplitPlan, check_target, plan_splits, write_layout
from posevae.data.video.smooth import KeypointSmoothing, check_parameter
from posevae.data.video.store import FrameStore, default_store_dir, open_store, source_key
from posevae.errors import UserError

WORKING_SIDE = 480  # frames are shrunk to this longer side (at least twice the output's) before anything else


@dataclass(frozen=True)
class VideoOptions:
    """What ``posevae data from-video`` can be told (CLI flags of the same names)."""

    height: int = 32  # written frame size (the model's frame_H x frame_W)
    width: int = 64
    fps: float | None = None  # resample to this frame rate (None: the source's)
    folder_fps: float = 30.0  # frame rate of a folder of frames
    val_len: int = 150  # frames of the validation video
    test_len: int = 150  # frames of each test sequence (its first frame included)
    n_test: int = 2  # test sequences
    clip_len: int = 16  # the trainer's --train_vi_len: training stretches are whole numbers of clips
    cut: str | float = "end"  # where val and the tests lie: "end", "start", or from this second on
    max_gap: float = 0.5  # seconds without a person that are interpolated; longer gaps cut the video
    smooth: float = 0.25  # seconds: standard deviation of the crop's smoothing over time
    min_visibility: float = MIN_VISIBILITY
    skeleton: SkeletonName = "demo"  # how the labels are drawn: the demo's skeleton or OpenPose's COCO-18
    # One Euro smoothing of the joints over time (.smooth; defaults measured in docs/video.md): cutoff in Hz
    # at rest (None: off) and how fast it rises with speed (1 / pixel of the extracted frames)
    keypoint_min_cutoff: float | None = None
    keypoint_beta: float = 0.0
    preset: str = "fast"  # the model preset the data is for: its downsample factor must divide the size
    cache_dir: str | None = None  # None: the default cache folder (see .store)
    use_cache: bool = True

    @property
    def keypoint_smoothing(self) -> KeypointSmoothing | None:
        if self.keypoint_min_cutoff is None:
            return None
        return KeypointSmoothing(self.keypoint_min_cutoff, self.keypoint_beta)

    def validate(self, where: Path) -> None:
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 8 for v in (self.height, self.width)
        ):
            raise UserError(f"--size must be at least 8x8 pixels, got {self.height!r}x{self.width!r}.")
        for name in ("val_len", "test_len", "n_test", "clip_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}.")
        if self.val_len < 2 or self.test_len < 2:
            raise UserError("--val-len and --test-len must be at least 2 (a first frame and one to predict).")
        if self.preset not in MODEL_PRESETS:
            raise UserError(
                f"--preset must be one of {', '.join(sorted(MODEL_PRESETS))}, got {self.preset!r}."
            )
        factor = MODEL_PRESETS[self.preset].get("downsample", 1)
        if self.height % factor or self.width % factor:
            raise UserError(
                f"Frame size {self.height}x{self.width} for {where} is not divisible by the {self.preset} "
                f"preset's downsample factor {factor}: pass --size with multiples of {factor} (e.g. "
                f"{self.height // factor * factor or factor}x{self.width // factor * factor or factor}), "
                "or --preset lab to train the lab model, which takes any size."
            )
        for name in ("fps", "folder_fps", "max_gap", "smooth"):
            value = getattr(self, name)
            if value is not None and not (
                math.isfinite(value) and value >= (0 if name in ("max_gap", "smooth") else 0.1)
            ):
                raise UserError(f"--{name.replace('_', '-')} must be a positive number, got {value!r}.")
        if self.skeleton not in SKELETON_NAMES:
            raise UserError(f"--skeleton must be one of {', '.join(SKELETON_NAMES)}, got {self.skeleton!r}.")
        if not (self.cut in ("end", "start") or (isinstance(self.cut, (int, float)) and self.cut >= 0)):
            raise UserError(f"--cut must be end, start or a time in seconds >= 0, got {self.cut!r}.")
        try:
            if self.keypoint_min_cutoff is not None:  # None: off
                check_parameter("--keypoint-min-cutoff", self.keypoint_min_cutoff, positive=True)
            check_parameter("--keypoint-beta", self.keypoint_beta, positive=False)
        except ValueError as err:
            raise UserError(f"{err} Pass another value, or --keypoint-min-cutoff off for no smoothing."
                            ) from None


@dataclass
class Extraction:
    frames: np.ndarray  # (N, h, w, 3) uint8, memory-mapped from the cache
    landmarks: Landmarks  # in the pixels of ``frames``
    fps: float
    seconds: float  # spent decoding and estimating (0 when both came from the cache)
    cached: bool


def _estimate(frames: Iterable[np.ndarray], static: bool, total: int, progress: bool) -> tuple[list, list]:
    xys, vis = [], []
    with (
        PoseEstimator(static) as estimator,
        tqdm(frames, total=total, desc="extracting poses", unit="frame", disable=not progress) as bar,
    ):
        for frame in bar:
            xy, v = estimator(frame)
            xys.append(xy)
            vis.append(v)
    return xys, vis


def extract(
    source: Source, store: FrameStore, *, fps: float | None, max_side: int, progress: bool
) -> Extraction:
    """Frames and landmarks of ``source`` (video mode for a video, static mode for a folder of frames),
    from ``store`` when it has them, else decoded and estimated in one pass and stored."""
    static = source.kind == "folder"
    started = time.perf_counter()
    frames = store.load_frames()
    landmarks = store.load_landmarks(static, len(frames)) if frames is not None else None
    cached = landmarks is not None
    if frames is None:
        stream = store.write_frames(read_frames(source, fps, max_side), source)
        xys, vis = _estimate(stream, static, expected_frames(source, fps), progress)
        frames = store.load_frames()
        if frames is None:  # the cache folder vanished under us: nothing to crop from
            raise UserError(
                f"The frame cache {store.folder} could not be read back; pass another --cache-dir."
            )
        landmarks = Landmarks(np.stack(xys), np.stack(vis))
    elif landmarks is None:
        xys, vis = _estimate(iter(frames), static, len(frames), progress)
        landmarks = Landmarks(np.stack(xys), np.stack(vis))
    if not cached:
        store.save_landmarks(static, landmarks)
    seconds = 0.0 if cached else time.perf_counter() - started
    return Extraction(frames, landmarks, fps or source.fps, seconds, cached)


@dataclass
class PersonTrack:
    joints: np.ndarray  # (N, 18, 2) in the extracted frames' pixels, gaps filled; NaN: not seen
    found: np.ndarray  # (N,) bool: a person was found in the frame itself
    segments: list[tuple[int, int]]  # stretches without long gaps

    @property
    def detection_rate(self) -> float:
        return float(self.found.mean()) if len(self.found) else 0.0


def person_track(
    landmarks: Landmarks,
    fps: float,
    max_gap_s: float,
    min_visibility: float,
    smoothing: KeypointSmoothing | None = None,
    skeleton: SkeletonName = "demo",
) -> PersonTrack:
    """The joints of ``landmarks``, short gaps filled, then smoothed over time within each segment."""
    joints = map_landmarks(landmarks, min_visibility, skeleton)
    filled, segments = track.person_segments(joints, max(0, round(max_gap_s * fps)))
    if smoothing is not None:
        filled = smoothing(filled, fps, segments)
    return PersonTrack(filled, track.has_person(joints), segments)


def crop_boxes(
    person: PersonTrack, frame_w: int, frame_h: int, out_h: int, out_w: int, smooth_frames: float
) -> np.ndarray:
    """(N, 4) x0, y0, w, h of the steady crop around the person (NaN outside the segments)."""
    aspect = out_w / out_h
    boxes = track.smooth_boxes(track.person_boxes(person.joints, aspect), person.segments, smooth_frames)
    return track.place_boxes(boxes, aspect, frame_w, frame_h)


def _cache_dir(options: VideoOptions) -> Path | None:
    if not options.use_cache:
        return None
    return Path(options.cache_dir).expanduser() if options.cache_dir else default_store_dir()


def _too_few(where: Path, person: PersonTrack, options: VideoOptions) -> UserError:
    n, k = len(person.found), int(person.found.sum())
    if k == 0:
        return UserError(
            f"No person was found in any of the {n} frames of {where}: use a video in which one "
            "person is in view (the whole body for dance data), well lit and not too small."
        )
    longest = max(b - a for a, b in person.segments)
    where_cut = "" if options.cut in ("end", "start") else f" from --cut {options.cut} s on"
    return UserError(
        f"A person was found in {k} of {n} frames of {where} ({k / n:.0%}), in {len(person.segments)} "
        f"stretch(es) without long gaps, the longest {longest} frames: the splits need a "
        f"{options.val_len}-frame val range and {options.n_test} test range(s) of {options.test_len} "
        f"frames{where_cut}, each inside one stretch, and at least one {options.clip_len}-frame training "
        "clip besides. Lower --val-len, --test-len or --n-test, or use a longer video."
    )


def _plan(where: Path, person: PersonTrack, options: VideoOptions, fps: float) -> SplitPlan:
    cut = options.cut if options.cut in ("end", "start") else round(float(options.cut) * fps)
    plan = plan_splits(
        person.segments,
        val_len=options.val_len,
        test_len=options.test_len,
        n_test=options.n_test,
        clip_len=options.clip_len,
        cut=cut,
    )
    if plan is None:
        raise _too_few(where, person, options)
    return plan


def _summary(
    source: Source,
    ex: Extraction,
    person: PersonTrack,
    plan: SplitPlan,
    options: VideoOptions,
    cache: Path | None,
) -> dict:
    n = len(person.found)
    return {
        "input": str(source.path.resolve()),
        "input_kind": source.kind,
        "source_fps": source.fps,
        "fps": ex.fps,
        "frames": n,
        "frames_with_person": int(person.found.sum()),
        "detection_rate": round(person.detection_rate, 4),
        "segments": [list(s) for s in person.segments],
        "splits": plan.as_dict(),
        "split_frames": {
            "train": sum(b - a for a, b in plan.train),
            "val": plan.val[1] - plan.val[0],
            "test": [b - a for a, b in plan.tests],
        },
        "frame_size": [options.height, options.width],
        "skeleton": options.skeleton,
        "extraction_seconds": round(ex.seconds, 2),
        "extraction_fps": round(n / ex.seconds, 1) if ex.seconds else None,
        "from_cache": ex.cached,
        "cache": str(cache) if cache else None,
        "estimator": f"mediapipe {MEDIAPIPE_VERSION} solutions.pose, model_complexity=1, "
        f"{'static' if source.kind == 'folder' else 'video'} mode",
        "options": asdict(options),
    }


def from_video(
    input_path: str | Path, out: str | Path, options: VideoOptions | None = None, *, progress: bool = True
) -> dict:
    """Write the lab layout made from ``input_path`` (a video file or a folder of frames) to ``out``.

    Returns the summary (also ``out/from_video.json``). Every problem with the input or the options is a
    :class:`UserError`, raised before ``out`` is touched.
    """
    options = options or VideoOptions()
    where, out = Path(input_path), Path(out).expanduser().absolute()
    options.validate(where)
    check_target(out)
    source = open_source(where, options.folder_fps)
    max_side = max(WORKING_SIDE, 2 * max(options.height, options.width))
    cache = _cache_dir(options)
    with open_store(cache, source_key(source, options.fps, max_side)) as store:
        ex = extract(source, store, fps=options.fps, max_side=max_side, progress=progress)
        person = person_track(
            ex.landmarks,
            ex.fps,
            options.max_gap,
            options.min_visibility,
            options.keypoint_smoothing,
            skeleton=options.skeleton,
        )
        plan = _plan(where, person, options, ex.fps)
        H, W = options.height, options.width
        boxes = crop_boxes(person, ex.frames.shape[2], ex.frames.shape[1], H, W, options.smooth * ex.fps)
        joints = track.to_crop(person.joints, boxes, H, W)

        def render(t: int) -> tuple[np.ndarray, np.ndarray]:
            label = draw_skeleton(joints[t], W, H, options.skeleton)
            return track.crop(ex.frames[t], boxes[t], H, W), np.asarray(label)

        summary = _summary(source, ex, person, plan, options, store.folder if cache else None)
        write_layout(out, plan, render, joints, summary, progress)
    return summary
