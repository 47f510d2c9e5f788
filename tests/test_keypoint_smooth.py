"""The One Euro keypoint filter (posevae.data.video.smooth) and its use in ``posevae data from-video``'s
person track: numpy only, no MediaPipe."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from posevae.data.video.estimate import Landmarks
from posevae.data.video.pipeline import VideoOptions, person_track
from posevae.data.video.smooth import KeypointSmoothing, one_euro
from posevae.errors import UserError

FPS = 30.0


def _jitter(x: np.ndarray) -> float:
    """Mean |second difference| over frames."""
    return float(np.linalg.norm(np.diff(x, 2, axis=0), axis=-1).mean())


def _slow_walk(n: int = 300, joints: int = 4) -> np.ndarray:
    t = np.arange(n)[:, None] / FPS + np.arange(joints)[None, :]
    return np.stack([200 + 20 * np.sin(0.3 * t), 150 + 10 * np.cos(0.21 * t)], axis=-1)  # (n, joints, 2)


def test_a_constant_signal_stays_constant():
    joints = np.broadcast_to(np.array([[120.25, 40.5], [7.0, 300.0]]), (50, 2, 2)).copy()
    for beta in (0.0, 0.05, 5.0):
        out = one_euro(joints, FPS, 1.0, beta)
        np.testing.assert_allclose(out, joints, rtol=0, atol=1e-9)


def test_a_noisy_slow_signal_gets_closer_to_the_truth_and_steadier():
    truth = _slow_walk()
    noisy = truth + np.random.default_rng(0).normal(0, 2.0, truth.shape)
    out = one_euro(noisy, FPS, 1.0, 0.01)
    raw_err = np.linalg.norm(noisy - truth, axis=-1).mean()
    err = np.linalg.norm(out - truth, axis=-1).mean()
    assert err < 0.6 * raw_err
    assert _jitter(out) < 0.3 * _jitter(noisy)


def _frames_to_follow(out: np.ndarray, step_at: int, height: float) -> int:
    """Frames after the step until the output is within 10% of the step's height."""
    after = out[step_at:, 0, 1]
    return int(np.argmax(np.abs(after - height) < 0.1 * height))


def test_a_fast_step_is_followed_with_a_lag_that_beta_shortens():
    joints = np.zeros((60, 1, 2))
    joints[20:, 0, 1] = 100.0  # a jump of 100 pixels between frames 19 and 20
    lag_slow = _frames_to_follow(one_euro(joints, FPS, 1.0, 0.0), 20, 100.0)
    lag_fast = _frames_to_follow(one_euro(joints, FPS, 1.0, 0.05), 20, 100.0)
    assert lag_slow > 3 and lag_fast < lag_slow
    out = one_euro(joints, FPS, 1.0, 0.05)
    assert (np.diff(out[20:, 0, 1]) >= -1e-9).all() and (out[:, 0, 1] <= 100 + 1e-9).all()  # no overshoot


def test_a_joint_not_seen_stays_nan_and_restarts_its_filter_without_spreading():
    rng = np.random.default_rng(1)
    joints = _slow_walk(80, 3) + rng.normal(0, 2.0, (80, 3, 2))
    gappy = joints.copy()
    gappy[30:34, 1] = np.nan  # joint 1 not seen for four frames
    out = one_euro(gappy, FPS, 1.0, 0.01)
    assert np.isnan(out[30:34, 1]).all() and np.isfinite(np.delete(out, np.s_[30:34], 0)).all()
    np.testing.assert_array_equal(out[34, 1], gappy[34, 1])  # the first frame after the gap: a fresh start
    np.testing.assert_allclose(out[34:, 1:2], one_euro(gappy[34:, 1:2], FPS, 1.0, 0.01), atol=1e-9)
    np.testing.assert_allclose(out[:30, 1:2], one_euro(gappy[:30, 1:2], FPS, 1.0, 0.01), atol=1e-9)
    untouched = one_euro(joints, FPS, 1.0, 0.01)  # the other joints do not notice the gap
    np.testing.assert_allclose(out[:, [0, 2]], untouched[:, [0, 2]], atol=1e-9)


def test_segments_are_filtered_apart_and_frames_outside_them_pass_unchanged():
    rng = np.random.default_rng(2)
    joints = _slow_walk(100, 2) + rng.normal(0, 2.0, (100, 2, 2))
    joints[50:] += 80.0  # a cut: the person jumps
    out = one_euro(joints, FPS, 1.0, 0.01, segments=[(0, 50), (50, 90)])
    np.testing.assert_allclose(out[:50], one_euro(joints[:50], FPS, 1.0, 0.01), atol=1e-9)
    np.testing.assert_allclose(out[50:90], one_euro(joints[50:90], FPS, 1.0, 0.01), atol=1e-9)
    np.testing.assert_array_equal(out[50], joints[50])  # nothing carried over the cut
    np.testing.assert_array_equal(out[90:], joints[90:])
    with pytest.raises(ValueError, match="segment"):
        one_euro(joints, FPS, 1.0, 0.01, segments=[(90, 120)])


def test_the_dtype_is_kept():
    joints = _slow_walk(20, 2).astype(np.float32)
    assert one_euro(joints, FPS, 1.0, 0.01).dtype == np.float32
    assert KeypointSmoothing(1.0, 0.01)(joints, FPS).dtype == np.float32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_cutoff": 0.0}, "min_cutoff must be a finite number > 0"),
        ({"min_cutoff": -1.0}, "min_cutoff"),
        ({"min_cutoff": float("nan")}, "min_cutoff"),
        ({"d_cutoff": 0.0}, "d_cutoff must be a finite number > 0"),
        ({"beta": -0.1}, "beta must be a finite number >= 0"),
        ({"beta": float("inf")}, "beta"),
        ({"fps": 0.0}, "fps must be a finite number > 0"),
    ],
)
def test_bad_parameters_are_a_clear_error(kwargs, message):
    args = {"fps": FPS, "min_cutoff": 1.0, "beta": 0.01, "d_cutoff": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        one_euro(np.zeros((5, 2, 2)), **args)
    if "fps" not in kwargs:
        with pytest.raises(ValueError, match=message):
            KeypointSmoothing(args["min_cutoff"], args["beta"], args["d_cutoff"])


def test_a_wrong_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(N, J, 2\)"):
        one_euro(np.zeros((5, 2)), FPS, 1.0, 0.0)


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=12).map(lambda s: (s[0], s[1], 2)),
        elements=st.floats(-1e5, 1e5) | st.just(np.nan),
    ),
    st.floats(0.01, 50.0),
    st.floats(0.0, 10.0),
    st.floats(0.01, 50.0),
    st.integers(0, 12),
)
def test_fuzz_nan_never_spreads_and_nan_stays_nan(joints, min_cutoff, beta, d_cutoff, cut):
    cut = min(cut, len(joints))
    for segments in (None, [(0, cut), (cut, len(joints))]):
        out = one_euro(joints, FPS, min_cutoff, beta, d_cutoff, segments=segments)
        seen = np.isfinite(joints).all(axis=2, keepdims=True)
        assert np.isfinite(out[np.broadcast_to(seen, out.shape)]).all()
        assert np.array_equal(np.isnan(out), np.isnan(joints))
        lo, hi = np.nanmin(joints, initial=np.inf), np.nanmax(joints, initial=-np.inf)
        assert (out[np.isfinite(out)] >= lo - 1e-6).all() and (out[np.isfinite(out)] <= hi + 1e-6).all()


# ------------------------------------------------------------------------- the person track, the options


def _landmarks(n: int, noise: float, seed: int = 0) -> Landmarks:
    """A person standing still (every landmark seen) with noisy landmarks, in 480-pixel frames."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(100, 300, (33, 2))
    xy = (base[None] + rng.normal(0, noise, (n, 33, 2))).astype(np.float32)
    return Landmarks(xy, np.ones((n, 33), np.float32))


def test_the_person_track_is_smoothed_after_gap_filling_within_segments():
    marks = _landmarks(120, 3.0)
    marks.xy[40:43] = np.nan  # a short gap (filled)
    marks.visibility[40:43] = 0
    marks.xy[80:100] = np.nan  # a long gap (a cut)
    marks.visibility[80:100] = 0
    raw = person_track(marks, FPS, 0.5, 0.5)
    smooth = person_track(marks, FPS, 0.5, 0.5, KeypointSmoothing(1.0, 0.0))
    assert raw.segments == smooth.segments == [(0, 80), (100, 120)]
    np.testing.assert_array_equal(raw.found, smooth.found)
    assert np.isfinite(smooth.joints[40:43]).all() and np.isnan(smooth.joints[80:100]).all()
    expected = one_euro(raw.joints, FPS, 1.0, 0.0, segments=raw.segments)
    np.testing.assert_allclose(smooth.joints, expected, atol=1e-4)
    assert _jitter(smooth.joints[:80]) < 0.5 * _jitter(raw.joints[:80])


def test_video_options_carry_the_smoothing_and_check_it(tmp_path):
    off = VideoOptions(keypoint_min_cutoff=None)
    assert off.keypoint_smoothing is None
    on = VideoOptions(keypoint_min_cutoff=2.0, keypoint_beta=0.03)
    assert on.keypoint_smoothing == KeypointSmoothing(2.0, 0.03)
    for bad in ({"keypoint_min_cutoff": 0.0}, {"keypoint_beta": -1.0}, {"keypoint_min_cutoff": float("inf")}):
        with pytest.raises(UserError, match="--keypoint-"):
            VideoOptions(**bad).validate(tmp_path)


def test_the_from_video_flags_reach_the_options():
    from posevae.cli.main import make_parser

    base = ["data", "from-video", "in.mp4", "--out", "ds"]
    args = make_parser().parse_args([*base, "--keypoint-min-cutoff", "2", "--keypoint-beta", "0.03"])
    assert (args.keypoint_min_cutoff, args.keypoint_beta) == (2.0, 0.03)
    assert make_parser().parse_args([*base, "--keypoint-min-cutoff", "off"]).keypoint_min_cutoff is None
    default = make_parser().parse_args(base)
    assert (default.keypoint_min_cutoff, default.keypoint_beta) == (
        VideoOptions().keypoint_min_cutoff,
        VideoOptions().keypoint_beta,
    )
