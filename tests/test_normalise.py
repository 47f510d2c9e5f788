"""Motion transfer's pose normalisation (posevae.data.video.normalise), Everybody Dance Now's global pose
normalisation: per-frame scale between the close and far ankle positions, heights that ignore the arms."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from posevae.data.video.normalise import frame_stats, normalise_poses, placement_stats
from posevae.errors import UserError

# a person of height 1 (head to the ankles' midpoint) standing with the ankles' midpoint at (0, 0), in the
# demo layout's joint order (0 head, 1 neck, shoulders/elbows/wrists 2-7, hips/knees/ankles 8-13, pelvis,
# chest, toes)
_ARMS_DOWN = np.array([
    (0, -1), (0, -0.85),
    (-0.12, -0.83), (-0.15, -0.65), (-0.16, -0.48),
    (0.12, -0.83), (0.15, -0.65), (0.16, -0.48),
    (-0.08, -0.5), (-0.08, -0.25), (-0.08, 0),
    (0.08, -0.5), (0.08, -0.25), (0.08, 0),
    (0, -0.5), (0, -0.67), (-0.1, 0.02), (0.1, 0.02),
], np.float64)  # fmt: skip
_ARMS_UP = _ARMS_DOWN.copy()
_ARMS_UP[[3, 4, 6, 7]] = [(-0.15, -1.05), (-0.17, -1.25), (0.15, -1.05), (0.17, -1.25)]


def person(height: float, x: float, ankle_y: float, arms_up: bool = False) -> np.ndarray:
    """(18, 2) joints of the person above, scaled to ``height`` with the ankles' midpoint at (x, ankle_y)."""
    return ((_ARMS_UP if arms_up else _ARMS_DOWN) * height + [x, ankle_y]).astype(np.float32)


def height_of(joints: np.ndarray) -> np.ndarray:
    return frame_stats(joints)[1]


def walker(n: int = 90, arms: bool = False) -> np.ndarray:
    """A dancer walking toward a pinhole camera over a level floor (horizon at y = 100 of a 480-high frame):
    the ankles go down from y = 200 to 400 and the image height grows in proportion (90 to 270 px, 3x),
    swinging its arms up and down, drifting sideways."""
    ankle = np.linspace(200, 400, n)
    return np.stack([person(0.9 * (a - 100), 300 + 0.3 * k, a, arms_up=arms and k % 6 < 3)
                     for k, a in enumerate(ankle)])


def test_a_dancer_walking_toward_the_camera_keeps_the_targets_height():
    """The target is one frame (a person of height 20 px, ankles at y = 29 of a 32x64 frame): every frame of
    the walk comes out 20 px tall within 3% (EDN's scale interpolated linearly would be 12% off midway)."""
    out = normalise_poses(walker(arms=True), person(20, 32, 29)[None], "walk.mp4")
    heights = height_of(out)
    assert np.abs(heights / 20 - 1).max() < 0.03, heights
    source = walker()
    assert height_of(source)[-1] / height_of(source)[0] == pytest.approx(3.0)  # the walk really changes size


def test_a_walk_onto_a_target_video_that_walks_too_keeps_depth():
    """Target: the same walk at half size in its own frame: each source frame lands at the same depth (ankle
    y) and the same height as the target's frame there."""
    target = walker() * 0.5
    out = normalise_poses(walker(), target, "walk.mp4")
    np.testing.assert_allclose(height_of(out), height_of(target), rtol=0.01)
    np.testing.assert_allclose(frame_stats(out)[0], frame_stats(target)[0], atol=0.5)


@pytest.mark.parametrize("arms_up", [False, True])
def test_raised_arms_do_not_change_the_scale(arms_up):
    """The old rule measured the vertical extent of every joint: this pair (source with its arms raised in its
    first frame, target the same skeleton at half size) came out at scale 0.427; the head-to-ankles height
    gives 0.5."""
    source = person(100, 50, 300, arms_up=arms_up)[None]
    target = person(50, 30, 60)[None]
    out = normalise_poses(source, target, "v.mp4")
    assert height_of(out)[0] / height_of(source)[0] == pytest.approx(0.5, abs=1e-4)
    np.testing.assert_allclose(out[0, 10:14:3].mean(axis=0), [30, 60], atol=1e-3)  # onto the target's ankles


def test_one_isotropic_scale_and_the_source_motion_around_the_target_position():
    """x and y are scaled alike; a source swaying sideways and jumping keeps that motion (at the scale) around
    where the target stands."""
    frames = np.stack([person(100, 200 + 10 * np.sin(k / 3), 300 - (15 if k % 10 == 5 else 0))
                       for k in range(40)])
    out = normalise_poses(frames, person(25, 40, 30)[None], "v.mp4")
    width = np.ptp(out[:, 2:8:3, 0], axis=1)  # shoulder to shoulder
    np.testing.assert_allclose(width, 0.24 * 25, rtol=1e-4)
    np.testing.assert_allclose(out[:, 1, 0] - 40, 0.25 * (frames[:, 1, 0] - np.median(frames[:, 1, 0])),
                               atol=1e-3)
    jumped = out[5, 10:14:3, 1].max()
    assert jumped == pytest.approx(30 - 0.25 * 15, abs=1e-3)


def test_edn_statistics_close_far_and_heights():
    stats = placement_stats(walker())
    assert stats is not None and stats.close == pytest.approx(400)
    assert stats.median == pytest.approx(300, abs=2)
    assert 240 < stats.far < 260  # the highest ankle within half of (close - median) above the median
    assert stats.height_close == pytest.approx(0.9 * 300, rel=1e-6)
    assert stats.height_far == pytest.approx(0.9 * (stats.far - 100), rel=1e-6)
    still = placement_stats(person(20, 32, 29)[None])
    assert still is not None and still.still and still.height_close == pytest.approx(20)


def test_frames_without_ankles_reuse_the_last_transform_and_nan_stays_nan():
    frames = walker(30)
    frames[10:13, 10] = np.nan
    frames[10:13, 13] = np.nan  # both ankles hidden for three frames
    frames[20, 4] = np.nan  # a wrist not seen
    out = normalise_poses(frames, person(20, 32, 29)[None], "v.mp4")
    assert np.isnan(out[20, 4]).all() and np.isnan(out[10:13, [10, 13]]).all()
    assert np.isfinite(np.delete(out, [4, 10, 13], axis=1)).all()
    head_neck = lambda j: np.hypot(*(j[:, 0] - j[:, 1]).T)  # noqa: E731
    scale = head_neck(out) / head_neck(frames)
    np.testing.assert_allclose(scale[10:13], scale[9], rtol=1e-5)  # frame 9's scale, as EDN reuses it
    assert not np.allclose(scale[13], scale[9], rtol=1e-3)


def test_head_and_shoulders_use_the_bones_both_see():
    """No ankle seen on one side (a head-and-shoulders shot): the scale comes from the bones both see, never
    the arms, and the median neck lands on the target's."""
    source = np.stack([person(200, 100, 400, arms_up=k % 2 == 0) for k in range(10)])
    source[:, 8:14] = np.nan  # legs out of the frame
    target = person(50, 30, 60)[None]
    out = normalise_poses(source, target, "carphone.mp4")
    np.testing.assert_allclose(np.hypot(*(out[:, 0] - out[:, 1]).T), 0.15 * 50, rtol=1e-4)
    np.testing.assert_allclose(out[:, 1], np.broadcast_to(target[0, 1], (10, 2)), atol=1e-3)


def test_nothing_in_common_is_one_user_error():
    source = np.full((5, 18, 2), np.nan, np.float32)
    source[:, 3:5] = person(100, 0, 0)[3:5]  # an arm only
    with pytest.raises(UserError, match=r"v\.mp4.*--no-normalise"):
        normalise_poses(source, person(50, 30, 60)[None], "v.mp4")


# ------------------------------------------------------------------------ transfer --poses VIDEO (drive.py)


def _source_video(tmp_path, monkeypatch, n: int = 12):
    """A folder of n frames (640x360) whose 'MediaPipe' finds a person of height 200 px swaying sideways."""
    import posevae.data.video.pipeline as pipeline
    from tests.test_video import landmarks_from_joints

    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(n):
        Image.fromarray(np.full((360, 640, 3), 60 + k, np.uint8)).save(frames / f"{k}.png")
    joints = np.stack([person(200, 300 + 5 * k, 320) for k in range(n)])
    landmarks = landmarks_from_joints(joints)

    def estimate(stream, static, total, progress):
        assert sum(1 for _ in stream) == n
        return list(landmarks.xy), list(landmarks.visibility)

    monkeypatch.setattr(pipeline, "_estimate", estimate)
    return frames


def _drawn_joints(monkeypatch) -> list:
    import posevae.data.video.drive as drive

    drawn: list = []
    real = drive.draw_skeleton

    def capture(kp, width, height, *args, **kwargs):
        drawn.append(np.asarray(kp).copy())
        return real(kp, width, height, *args, **kwargs)

    monkeypatch.setattr(drive, "draw_skeleton", capture)
    return drawn


def test_a_wide_first_frame_squeezes_source_and_target_alike(tmp_path, monkeypatch):
    """First frame 1280x720 resized to the model's 64x32 (x by 1/20, y by 1/22.5): the driving skeleton is
    squeezed as the target person in that frame is, so their widths match their heights (was 12.5% off)."""
    import posevae.data.video.drive as drive
    from tests.test_video import landmarks_from_joints

    frames = _source_video(tmp_path, monkeypatch)
    Image.new("RGB", (1280, 720)).save(tmp_path / "first.png")
    target = person(450, 640, 650)[None]

    class Estimator:  # MediaPipe's static mode on the first frame
        def __init__(self, static):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def __call__(self, rgb):
            assert rgb.shape == (720, 1280, 3)
            marks = landmarks_from_joints(target)
            return marks.xy[0], marks.visibility[0]

    monkeypatch.setattr(drive, "PoseEstimator", Estimator)
    drawn = _drawn_joints(monkeypatch)
    driven = drive.poses_from_video(frames, tmp_path / "first.png", 32, 64, cache_dir=tmp_path / "cache",
                                    progress=False)
    assert driven.info["normalised_to"] == "the first frame's person"
    in_model = target[0] * [64 / 1280, 32 / 720]
    for kp in drawn:
        np.testing.assert_allclose(np.ptp(kp[[2, 5], 0]), np.ptp(in_model[[2, 5], 0]), rtol=1e-3)  # shoulders
        np.testing.assert_allclose(height_of(kp[None])[0], height_of(in_model[None])[0], rtol=1e-3)


def test_a_first_frame_of_a_dataset_takes_the_datasets_keypoints(tmp_path, monkeypatch):
    """A first frame from a posevae dataset: the target is measured over the dataset's training keypoints
    (MediaPipe is not run on it); here the target walks, so the source lands at its depths."""
    import posevae.data.video.drive as drive

    frames = _source_video(tmp_path, monkeypatch)
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    (root / "test" / "test_img" / "0").mkdir(parents=True)
    (root / "keypoints.json").write_text("{}")
    keypoints = np.stack([person(10 + k / 4, 32, 20 + k / 4) for k in range(40)])
    np.save(root / "train" / "train_keypoints.npy", keypoints)
    Image.new("RGB", (64, 32)).save(root / "test" / "test_img" / "0" / "0.png")
    monkeypatch.setattr(drive, "PoseEstimator", None)  # never called
    drawn = _drawn_joints(monkeypatch)
    driven = drive.poses_from_video(frames, root / "test" / "test_img" / "0" / "0.png", 32, 64,
                                    cache_dir=tmp_path / "cache", progress=False)
    assert driven.info["normalised_to"] == (
        "the keypoints of 40 training frames of the first frame's dataset")
    target = placement_stats(keypoints)
    assert target is not None and not target.still
    for kp in drawn:  # a source standing in one place: at the target's median depth and its height there
        assert frame_stats(kp[None])[0][0] == pytest.approx(target.median, abs=0.05)
        assert height_of(kp[None])[0] == pytest.approx(
            float(target.height(target.position(target.median))), rel=1e-3)
