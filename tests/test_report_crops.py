"""Figure 10 of the report: crops around the dancer, true against predicted (posevae.report.crops)."""

import numpy as np
import pytest

from posevae.report.crops import crop_box, crop_indices, draw_person_crops, val_crops
from posevae.run_folder import VAL_FRAMES, ValFrames, read_val_frames
from tests.test_report import assert_image, compared, dataset  # noqa: F401  (module fixtures)


def test_crop_indices_are_spread_over_the_predicted_frames():
    assert crop_indices(630) == [1, 127, 252, 378, 503, 629]  # 1 + k * 125.6, rounded
    assert crop_indices(4) == [1, 2, 3]
    assert crop_indices(1) == []


def test_crop_box_by_hand():
    label = np.zeros((3, 16, 32), np.uint8)
    label[1, 5:9, 10:12] = 255  # pose pixels: rows 5..8, columns 10..11
    # person box padded by 2: rows 3..10 (8 high), columns 8..13 (6 wide); 6 / 8 is the aspect 0.75 already
    assert crop_box(label) == (3, 11, 8, 14)
    # now columns 10..19: box columns 8..21, 14 wide -> height round(14 / 0.75) = 19
    label[1, 5:9, 10:20] = 255
    top, bottom, left, right = crop_box(label)  # 19 rows do not fit in 16: the whole height
    assert (top, bottom, left, right) == (0, 16, 8, 22)
    assert crop_box(np.zeros((3, 16, 32), np.uint8)) is None
    edge = np.zeros((3, 16, 32), np.uint8)
    edge[0, 0:2, 30:32] = 255  # at the corner: the window stays inside the frame
    top, bottom, left, right = crop_box(edge)
    assert top == 0 and right == 32 and bottom - top == 5 and right - left == 4


# F811: pytest hands the fixture imported above to the parameter of the same name
def test_the_report_shows_each_runs_validation_frames_around_the_dancer(compared):  # noqa: F811
    frames = {name: read_val_frames(compared / "runs" / name / VAL_FRAMES)
              for name in ("None", "Monotonic", "Cyclical")}
    source, predictions, indices = val_crops(frames)
    assert indices == crop_indices(10) == [1, 3, 4, 6, 7, 9]
    np.testing.assert_array_equal(source.truth, frames["None"].true)  # the truth and labels of the video
    np.testing.assert_array_equal(source.labels, frames["None"].labels)
    assert list(predictions) == ["None", "Monotonic", "Cyclical"]
    for name, pred in predictions.items():  # each run's prediction at its best epoch, at those frames
        np.testing.assert_array_equal(pred, frames[name].pred[indices])
    fig = draw_person_crops(source, predictions, indices)
    assert len(fig.axes) == 4 * len(indices)  # the truth and three runs
    assert [ax.get_ylabel() for ax in fig.axes[::len(indices)]] == ["true", "None", "Monotonic", "Cyclical"]
    assert_image(compared / "figures" / "fig10_person_crops.png")


def test_runs_without_frames_or_of_another_video_are_left_out_of_the_crops():
    rng = np.random.default_rng(0)

    def frames(true: np.ndarray) -> ValFrames:
        return ValFrames(0, rng.integers(0, 256, true.shape, dtype=np.uint8), true, np.zeros_like(true))

    video = rng.integers(0, 256, (5, 3, 16, 32), dtype=np.uint8)
    other = video.copy()
    other[2] ^= 1  # another video: frame 2 differs
    runs = {"old": None, "a": frames(video), "b": frames(other), "c": frames(video),
            "small": frames(video[:, :, :8])}
    source, predictions, indices = val_crops(runs)
    assert list(predictions) == ["a", "c"] and indices == [1, 2, 3, 4]
    np.testing.assert_array_equal(source.truth, video)
    assert val_crops({"old": None}) is None
    assert val_crops({"one frame": frames(video[:1])}) is None  # nothing predicted to crop


@pytest.mark.parametrize("n", [2, 7, 630])
def test_crop_indices_never_include_the_given_frame(n):
    assert all(1 <= k <= n - 1 for k in crop_indices(n))
