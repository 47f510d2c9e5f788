"""Figure 10 of the report: crops around the dancer, true against predicted (posevae.report.crops)."""

import numpy as np
import pytest
from PIL import Image

from posevae.report.crops import (
    crop_box,
    crop_indices,
    draw_person_crops,
    first_source_with_truth,
    read_predicted,
)
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


# F811: pytest hands the fixtures imported above to these parameters of the same names
def test_the_report_shows_each_runs_test_frames_around_the_dancer(compared, dataset):  # noqa: F811
    source = first_source_with_truth(dataset, 16, 32)
    assert source is not None and source.name == "0"
    indices = crop_indices(source.truth.shape[0])
    predictions = {}
    for name in ("None", "Monotonic", "Cyclical"):
        run = compared / "runs" / name
        frames = read_predicted(run, source, indices)
        assert not (run / "test" / "seq0").exists()  # compare writes no PNGs: the rows of submission.csv
        with open(run / "test" / "submission.csv") as f:
            rows = f.read().splitlines()[1:]
        for k, frame in zip(indices, frames, strict=True):
            row = np.array(rows[k].split(",")[1:], dtype=np.uint8)  # sequence 0's frame k has id k
            np.testing.assert_array_equal(frame.reshape(-1), row)
        predictions[name] = frames
    fig = draw_person_crops(source, predictions, indices)
    assert len(fig.axes) == 4 * len(indices)  # the truth and three runs
    assert [ax.get_ylabel() for ax in fig.axes[::len(indices)]] == ["true", "None", "Monotonic", "Cyclical"]
    assert_image(compared / "figures" / "fig10_person_crops.png")


def test_frame_pngs_are_read_when_test_wrote_them(compared, dataset, tmp_path):  # noqa: F811 (fixtures)
    source = first_source_with_truth(dataset, 16, 32)
    assert read_predicted(tmp_path, source, [1, 2]) is None  # no test output
    folder = tmp_path / "test" / "seq0" / "frames"
    folder.mkdir(parents=True)
    frames = np.random.default_rng(0).integers(0, 256, (2, 16, 32, 3), dtype=np.uint8)
    for k, frame in zip([1, 2], frames, strict=True):
        Image.fromarray(frame).save(folder / f"{k}.png")
    np.testing.assert_array_equal(read_predicted(tmp_path, source, [1, 2]), frames.transpose(0, 3, 1, 2))
    Image.fromarray(frames[0][:8]).save(folder / "2.png")  # another size: not this sequence's frame
    assert read_predicted(tmp_path, source, [1, 2]) is None
    assert first_source_with_truth(tmp_path / "nowhere", 16, 32) is None


@pytest.mark.parametrize("n", [2, 7, 630])
def test_crop_indices_never_include_the_given_frame(n):
    assert all(1 <= k <= n - 1 for k in crop_indices(n))
