"""posevae data from-video without MediaPipe: the landmark mapping, cropping and drawing fed with the demo
renderer's ground-truth keypoints; gaps, segments, smoothing and the split plan; normalisation; bad input;
the CLI. (tests/test_video_mediapipe.py runs MediaPipe on real images and videos; it skips without it.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from posevae.cli.data import add_data_from_video_command, parse_cut, parse_size
from posevae.data.skeleton import JOINT_INDEX, JOINT_NAMES, LIMB_COLORS, LIMBS, draw_skeleton
from posevae.data.video import VideoOptions, from_video, track
from posevae.data.video.estimate import Landmarks, map_landmarks
from posevae.data.video.layout import plan_splits
from posevae.errors import UserError

# MediaPipe landmark of each joint that has one of its own (the rest are midpoints)
MEDIAPIPE_ID = {
    "left_shoulder": 11,
    "right_shoulder": 12,
    "left_elbow": 13,
    "right_elbow": 14,
    "left_wrist": 15,
    "right_wrist": 16,
    "left_hip": 23,
    "right_hip": 24,
    "left_knee": 25,
    "right_knee": 26,
    "left_ankle": 27,
    "right_ankle": 28,
    "left_toe": 31,
    "right_toe": 32,
}


def landmarks_from_joints(joints: np.ndarray) -> Landmarks:
    """What MediaPipe would report for a person whose skeleton is ``joints`` (N, 18, 2): ears 2 px either side
    of the head joint, the nose on it; no landmark for neck, pelvis or chest (they are midpoints)."""
    xy = np.full((len(joints), 33, 2), np.nan, np.float32)
    for name, i in MEDIAPIPE_ID.items():
        xy[:, i] = joints[:, JOINT_INDEX[name]]
    head = joints[:, JOINT_INDEX["head"]]
    xy[:, 0], xy[:, 7], xy[:, 8] = head, head + [2, 0], head - [2, 0]
    return Landmarks(xy, np.isfinite(xy[..., 0]).astype(np.float32))


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """32 demo frames at 64x128 with their labels and ground-truth keypoints."""
    pytest.importorskip("pybullet")
    from posevae.data.demo.dataset import _render

    return _render(
        tmp_path_factory.mktemp("demo") / "ds",
        seed=0,
        n_train=32,
        n_val=2,
        n_test=1,
        test_len=2,
        height=64,
        width=128,
        progress=False,
        workers=1,
    )


def _demo_split(root: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    kp = np.load(root / "train" / "train_keypoints.npy")
    labels = [np.asarray(Image.open(root / "train" / "train_label" / f"{k}.png")) for k in range(len(kp))]
    return kp, labels


def test_mapping_and_drawing_give_the_demo_labels(demo):
    kp, labels = _demo_split(demo)
    joints = map_landmarks(landmarks_from_joints(kp))
    body = np.ptp(kp[..., 1], axis=1)[:, None]  # (N, 1) height of the skeleton
    error = np.linalg.norm(joints - kp, axis=2) / body
    derived = [JOINT_INDEX["neck"], JOINT_INDEX["chest"]]  # shoulder midpoint, pelvis-neck midpoint
    assert np.delete(error, derived, axis=1).max() < 1e-3  # every other joint is exact (float32 rounding)
    assert error[:, derived].max() < 0.03  # the humanoid's neck and chest sit within 3% of the body height
    full_frame = np.array([[0.0, 0.0, 128.0, 64.0]] * len(kp))
    in_frame = track.to_crop(joints, full_frame, 64, 128)
    for k, label in enumerate(labels):  # tolerance: 99% of the pixels identical (the neck moves < 2 px)
        mine = np.asarray(draw_skeleton(in_frame[k], 128, 64))
        assert (mine == label).all(axis=2).mean() >= 0.99


def _dilated_skeleton(label: np.ndarray) -> np.ndarray:
    on = label.max(axis=2) > 40
    out = on.copy()
    out[1:] |= on[:-1]
    out[:-1] |= on[1:]
    out[:, 1:] |= on[:, :-1]
    out[:, :-1] |= on[:, 1:]
    return out


@pytest.mark.parametrize("where", ["zoomed on the person", "partly outside the frame"])
def test_cropped_labels_lie_on_the_cropped_demo_labels(demo, where):
    kp, labels = _demo_split(demo)
    if where == "zoomed on the person":
        boxes = np.stack(
            [kp[:, :, 0].min(1) - 8, kp[:, :, 1].min(1) - 6, np.full(len(kp), 64.0), np.full(len(kp), 32.0)],
            1,
        )
    else:
        boxes = np.stack(
            [
                kp[:, :, 0].mean(1) - 60,
                kp[:, :, 1].mean(1) - 45,
                np.full(len(kp), 120.0),
                np.full(len(kp), 60.0),
            ],
            1,
        )
    joints = track.to_crop(kp, boxes, 32, 64)
    for k, label in enumerate(labels):
        resampled = _dilated_skeleton(track.crop(label, boxes[k], 32, 64))  # the demo's label, cropped
        mine = np.asarray(draw_skeleton(joints[k], 64, 32)).any(axis=2)
        assert (resampled & mine).sum() == mine.sum()  # every drawn pixel within 1 px of the demo's skeleton
    grey = track.crop(np.full((64, 128, 3), 200, np.uint8), boxes[0], 32, 64)
    assert (grey.max() == 200) and (where == "zoomed on the person") == (
        grey.min() == 200
    )  # black padding outside


def test_joints_with_low_visibility_are_left_out_with_their_limbs(demo):
    assert LIMBS[12:14] == (("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"))
    kp = np.load(demo / "train" / "train_keypoints.npy")[:1]
    marks = landmarks_from_joints(kp)
    marks.visibility[0, 14] = 0.2  # right elbow: below MediaPipe's 0.5
    joints = map_landmarks(marks)[0]
    elbow = JOINT_INDEX["right_elbow"]
    assert np.isnan(joints[elbow]).all() and np.isfinite(np.delete(joints, elbow, axis=0)).all()
    label = np.asarray(draw_skeleton(joints, 128, 64))
    full = np.asarray(draw_skeleton(map_landmarks(landmarks_from_joints(kp))[0], 128, 64))  # all seen
    gone = (full != label).any(axis=2)  # only the elbow's limbs (and its dot, of the elbow-wrist colour) went
    assert gone.any() and {tuple(c) for c in full[gone]} <= {LIMB_COLORS[12], LIMB_COLORS[13]}
    shoulder, wrist = kp[0, JOINT_INDEX["right_shoulder"]], kp[0, JOINT_INDEX["right_wrist"]]
    for end in (shoulder, wrist):  # the middle of each limb of the elbow was drawn and is not now
        x, y = np.floor((end + kp[0, elbow]) / 2).astype(int)
        assert full[y, x].any() and not label[y, x].any() or np.linalg.norm(end - kp[0, elbow]) < 3


def test_the_head_falls_back_to_the_nose():
    marks = landmarks_from_joints(np.zeros((1, 18, 2), np.float32) + 10)
    marks.xy[0, 0] = (3, 4)
    marks.visibility[0, 7] = 0.0  # one ear not seen
    assert tuple(map_landmarks(marks)[0, JOINT_INDEX["head"]]) == (3, 4)


def test_short_gaps_are_interpolated_and_long_ones_cut():
    found = np.ones(40, bool)
    found[[0, 1]] = False  # before the first person: dropped
    found[10:13] = False  # 3 frames: filled
    found[20:30] = False  # 10 frames: a cut
    assert track.segments_of(found, max_gap=4) == [(2, 20), (30, 40)]
    joints = np.where(found[:, None, None], np.arange(40, dtype=np.float32)[:, None, None], np.nan) * np.ones(
        (1, 18, 2)
    )
    filled = track.fill_gaps(joints, found, [(2, 20), (30, 40)])
    np.testing.assert_allclose(filled[10:13, 0, 0], [10, 11, 12])  # linear between frames 9 and 13
    assert np.isnan(filled[20:30]).all()


def test_the_split_plan_keeps_ranges_apart_and_clips_inside_segments():
    segments = [(0, 100), (130, 230), (240, 300)]
    plan = plan_splits(segments, val_len=30, test_len=20, n_test=2, clip_len=16, cut="end")
    assert plan.val == (200, 230) and plan.tests == [
        (260, 280),
        (280, 300),
    ]  # val moved back to fit in one segment
    held = [plan.val, *plan.tests]
    for a, b in held:  # each held-out range inside one segment
        assert any(s <= a and b <= e for s, e in segments)
    used = held + plan.train
    flat = np.concatenate([np.arange(a, b) for a, b in used])
    assert len(flat) == len(set(flat))  # no frame in two places
    for a, b in plan.train:  # training stretches: whole clips inside one segment
        assert (b - a) % 16 == 0 and any(s <= a and b <= e for s, e in segments)
    start = plan_splits(segments, val_len=30, test_len=20, n_test=2, clip_len=16, cut="start")
    assert start.val == (0, 30) and start.tests == [(30, 50), (50, 70)]
    at = plan_splits(
        segments, val_len=30, test_len=20, n_test=1, clip_len=16, cut=90
    )  # spans a cut: moves on
    assert at.val == (130, 160) and at.tests == [(160, 180)]
    assert plan_splits(segments, val_len=120, test_len=20, n_test=1, clip_len=16, cut="end") is None


def test_smoothing_removes_jitter_and_keeps_the_aspect():
    rng = np.random.default_rng(0)
    t = np.arange(120)
    joints = np.zeros((120, 18, 2), np.float32)
    joints[..., 0] = 100 + t[:, None] * 0.5 + rng.normal(0, 3, (120, 18))  # walking right, noisy detections
    joints[..., 1] = np.linspace(40, 200, 18)[None] + rng.normal(0, 3, (120, 18))
    boxes = track.person_boxes(joints, aspect=2.0)
    smooth = track.smooth_boxes(boxes, [(0, 120)], smooth_frames=7.5)

    def jitter(b: np.ndarray) -> float:
        return np.abs(np.diff(b[:, 0], 2)).mean()

    assert jitter(smooth) < jitter(boxes) / 5
    placed = track.place_boxes(smooth, 2.0, 640, 360)
    np.testing.assert_allclose(placed[:, 2] / placed[:, 3], 2.0)
    assert (placed[:, 1] >= 0).all() and (placed[:, 1] + placed[:, 3] <= 360).all()  # slid into the frame


# --------------------------------------------------------------------------------------------- bad input


def _frames_folder(root: Path, n: int = 3) -> Path:
    root.mkdir()
    for k in range(n):
        Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(root / f"{k}.png")
    return root


def test_bad_input_is_one_user_error_and_writes_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out"
    frames = _frames_folder(tmp_path / "frames")
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    cases = [
        (tmp_path / "missing.mp4", {}, "does not exist"),
        (text, {}, "not a video file"),
        (frames, {"height": 30, "width": 64}, "not divisible by the fast preset's downsample factor 4"),
        (frames, {"val_len": 0}, "--val-len"),
    ]
    for source, options, message in cases:
        with pytest.raises(UserError, match=message) as info:
            from_video(source, out, VideoOptions(**options), progress=False)
        assert str(source.name) in str(info.value) or "--" in message
        assert not out.exists() and not list(tmp_path.glob(".out*"))
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # as if the video extra were not installed
    monkeypatch.setitem(sys.modules, "mediapipe.python.solutions", None)
    with pytest.raises(UserError, match=r'pip install -e "\.\[video\]"'):
        from_video(frames, out, VideoOptions(use_cache=False), progress=False)
    assert not out.exists()


def test_a_foreign_folder_is_not_overwritten(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="refusing to overwrite"):
        from_video(_frames_folder(tmp_path / "frames"), out, progress=False)
    assert (out / "keep.txt").read_text() == "mine"


def test_cli_parses_sizes_cuts_and_help(capsys):
    assert parse_size("32x64") == (32, 64) and parse_size("48X96") == (48, 96)
    assert parse_cut("end") == "end" and parse_cut("12.5") == 12.5
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("32")
    parser = argparse.ArgumentParser(prog="posevae")
    add_data_from_video_command(parser.add_subparsers(dest="data_command", required=True))
    args = parser.parse_args(
        [
            "from-video",
            "in.mp4",
            "--out",
            "d",
            "--size",
            "64x128",
            "--cut",
            "start",
            "--val_len",
            "40",
            "--train_vi_len",
            "8",
            "--quiet",
        ]
    )
    assert (args.size, args.cut, args.val_len, args.clip_len, args.quiet) == ((64, 128), "start", 40, 8, True)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["from-video", "--help"])
    assert info.value.code == 0 and "--test-len" in capsys.readouterr().out
    assert len(JOINT_NAMES) == 18


def turning_person(n: int = 40, gap: int = 20) -> np.ndarray:
    """A person seen from the right in frames 0..gap-1, nobody in frame ``gap``, seen from the left after
    it: the two neighbours of the gap share no seen joint (issue 23's crash)."""
    joints = np.full((n, len(JOINT_NAMES), 2), np.nan, np.float32)
    t = np.arange(n, dtype=np.float32)[:, None]
    for side, frames in (("right_", slice(0, gap)), ("left_", slice(gap + 1, n))):
        for k, name in enumerate(JOINT_NAMES):
            if name.startswith(side):
                joints[frames, k, 0] = 200 + 2 * t[frames, 0] + 10 * (k % 3)
                joints[frames, k, 1] = 80 + 25 * k
    return joints


def test_a_gap_that_cannot_be_filled_cuts_the_segment_and_every_box_stays_finite():
    joints = turning_person()
    filled, segments = track.person_segments(joints, max_gap=4)
    assert segments == [(0, 20), (21, 40)]  # before: [(0, 40)] with frame 20 all NaN
    assert np.isnan(filled[20]).all()
    boxes = track.smooth_boxes(track.person_boxes(filled, 2.0), segments, smooth_frames=7.5)
    placed = track.place_boxes(boxes, 2.0, 640, 360)
    inside = np.r_[0:20, 21:40]
    assert np.isfinite(placed[inside]).all()
    frame = np.full((360, 640, 3), 90, np.uint8)
    assert track.crop(frame, placed[0], 32, 64).shape == (32, 64, 3)


def test_smoothing_neither_spreads_nor_counts_a_nan():
    values = np.arange(30, dtype=np.float64)[:, None] * np.ones((1, 3))
    values[12] = np.nan
    smooth = track._gaussian_smooth(values, 3.0)
    assert np.isfinite(np.delete(smooth, 12, axis=0)).all()
    np.testing.assert_allclose(smooth[12], 12.0, atol=1e-9)  # a straight line: the finite neighbours' mean
    assert np.isnan(track._gaussian_smooth(np.full((5, 2), np.nan), 1.0)).all()


@pytest.mark.parametrize("command", ["from-video", "transfer"])
def test_both_commands_run_through_the_turning_person(tmp_path, monkeypatch, command):
    """`data from-video` and `transfer --poses VIDEO` (its pose extraction) on the crash case: no exception,
    finite crops, and the gap frame is cut out (from-video) or holds the last pose (transfer)."""
    import posevae.data.video.pipeline as pipeline
    from posevae.data.video.drive import poses_from_video

    n = 40
    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(n):
        Image.fromarray(np.full((360, 640, 3), 60 + k, np.uint8)).save(frames / f"{k}.png")
    landmarks = landmarks_from_joints(turning_person(n))

    def estimate(stream, static, total, progress):  # MediaPipe's place: what it reports for the person
        assert sum(1 for _ in stream) == n  # the frames pass through (they are cached as they go)
        return list(landmarks.xy), list(landmarks.visibility)

    monkeypatch.setattr(pipeline, "_estimate", estimate)
    if command == "from-video":
        options = VideoOptions(val_len=6, test_len=6, n_test=1, clip_len=4, use_cache=False, max_gap=0.2)
        summary = from_video(frames, tmp_path / "out", options, progress=False)
        assert summary["segments"] == [[0, 20], [21, 40]] and summary["frames_with_person"] == 39
        written = sorted((tmp_path / "out").rglob("*.png"))
        assert written and all(np.asarray(Image.open(p)).shape == (32, 64, 3) for p in written)
    else:
        driven = poses_from_video(frames, frames / "0.png", 32, 64, normalise=False,
                                  cache_dir=tmp_path / "cache", progress=False)
        assert driven.labels.shape == (n, 32, 64, 3) and driven.source.shape == (n, 32, 64, 3)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), n=st.integers(1, 40), max_gap=st.integers(0, 6), smooth=st.floats(0.0, 8.0))
def test_tracking_never_gives_a_nan_box_inside_a_segment(data, n, max_gap, smooth):
    """Fuzzed visibility (whole frames missing, single joints, a single frame): every frame of a segment
    gets a finite box that crops, and the transfer path (poses held outside the segments) gets one for every
    frame; nothing raises."""
    from posevae.data.video.drive import _hold_outside
    from posevae.data.video.pipeline import PersonTrack

    seen = data.draw(hnp.arrays(np.bool_, (n, len(JOINT_NAMES)), elements=st.booleans()))
    xy = data.draw(hnp.arrays(np.float32, (n, len(JOINT_NAMES), 2), elements=st.floats(0, 600, width=32)))
    joints = np.where(seen[..., None], xy, np.nan).astype(np.float32)
    filled, segments = track.person_segments(joints, max_gap)
    boxes = track.place_boxes(track.smooth_boxes(track.person_boxes(filled, 2.0), segments, smooth), 2.0,
                              640, 360)
    frame = np.zeros((360, 640, 3), np.uint8)
    for a, b in segments:
        assert 0 <= a < b <= n and np.isfinite(boxes[a:b]).all()
        assert track.crop(frame, boxes[a], 16, 32).shape == (16, 32, 3)
    if segments:
        held = _hold_outside(PersonTrack(filled, track.has_person(joints), segments))
        whole = track.place_boxes(track.smooth_boxes(track.person_boxes(held, 2.0), [(0, n)], smooth), 2.0,
                                  640, 360)
        assert np.isfinite(whole).all()
