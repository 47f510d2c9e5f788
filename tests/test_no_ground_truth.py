"""The course's real test split has no ground truth; one pose image may be missing (issue 15, part 1).

Every path that shows scores must work without test_gt: `posevae test` (with and without --samples),
scores.csv and summary.json (nulls as nulls), the report and the demo's summary.
"""

import csv
import json
import shutil

import pytest

from posevae.cli.main import main
from posevae.config import RunConfig
from posevae.model.checkpoint import Checkpoint, save_checkpoint
from posevae.model.vae import PoseVAE
from tests.conftest import tiny_model_config
from tests.synthetic import make_lab_dataset

H, W, LEN = 16, 32, 6


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("nogt")
    data = make_lab_dataset(root / "with_gt", n_train=24, n_val=12, n_test=3, test_len=LEN, H=H, W=W)
    config = RunConfig(model=tiny_model_config(H, W))
    ckpt = root / "tiny.safetensors"
    save_checkpoint(ckpt, Checkpoint(config, PoseVAE(config.model).state_dict()))
    return root, data, ckpt


def _copy(data, dest, drop_gt=()):
    """A copy of the dataset without test_gt for the named sequences (all: without the folder)."""
    shutil.copytree(data, dest, ignore=shutil.ignore_patterns(".posevae_cache"))
    gt = dest / "test" / "test_gt"
    if drop_gt == "all":
        shutil.rmtree(gt)
    for name in drop_gt if drop_gt != "all" else ():
        shutil.rmtree(gt / name)
    return dest


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))[1:]


def test_without_test_gt_test_writes_everything_says_why_and_exits_0(world, tmp_path, capsys):
    _, data, ckpt = world
    dr, out = _copy(data, tmp_path / "DR", "all"), tmp_path / "out"
    assert main(["test", "--ckpt", str(ckpt), "--DR", str(dr), "--out", str(out), "--quiet"]) == 0
    stdout = capsys.readouterr().out
    assert "Wrote" in stdout and "3 test sequences" in stdout
    assert "Scores skipped: no ground truth" in stdout and "test_gt does not exist" in stdout
    assert "Test PSNR" not in stdout
    assert len(_rows(out / "submission.csv")) == 3 * LEN
    assert not (out / "scores.csv").exists() and not list(out.glob("compare_*"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mean_psnr"] is None and summary["mean_ssim"] is None and summary["scored_sequences"] == 0
    assert summary["sequences"]["0"] == {"frames": LEN, "psnr": None, "ssim": None, "baseline_psnr": None,
                                         "psnr_pose": None, "psnr_box": None}
    assert summary["mean_psnr_pose"] is None and summary["mean_psnr_box"] is None
    assert '"psnr": null' in (out / "summary.json").read_text()  # nulls written as JSON nulls


def test_ground_truth_for_some_sequences_scores_those_and_names_the_others(world, tmp_path, capsys):
    _, data, ckpt = world
    full_out, part_out = tmp_path / "full", tmp_path / "part"
    assert main(["test", "--ckpt", str(ckpt), "--DR", str(data), "--out", str(full_out), "--quiet"]) == 0
    dr = _copy(data, tmp_path / "DR", ["1"])
    capsys.readouterr()
    with pytest.warns(UserWarning, match="no ground truth for test sequence"):
        assert main(["test", "--ckpt", str(ckpt), "--DR", str(dr), "--out", str(part_out), "--quiet"]) == 0
    stdout = capsys.readouterr().out
    assert "Scores for 2 of 3 sequences only: no ground truth for sequence(s) 1" in stdout
    full = json.loads((full_out / "summary.json").read_text())
    part = json.loads((part_out / "summary.json").read_text())
    assert part["sequences"]["1"]["psnr"] is None and part["scored_sequences"] == 2
    for name in ("0", "2"):  # the same frames and scores as with every sequence's ground truth
        assert part["sequences"][name] == full["sequences"][name]
    expected = (full["sequences"]["0"]["psnr"] + full["sequences"]["2"]["psnr"]) / 2
    assert part["mean_psnr"] == pytest.approx(expected)
    for key in ("psnr_pose", "psnr_box"):  # the person metrics too: over the scored sequences
        mean = (full["sequences"]["0"][key] + full["sequences"]["2"][key]) / 2
        assert part[f"mean_{key}"] == pytest.approx(mean)
    assert {row[0] for row in _rows(part_out / "scores.csv")} == {"0", "2"}
    assert (part_out / "submission.csv").read_bytes() == (full_out / "submission.csv").read_bytes()


def test_samples_without_ground_truth_are_drawn_not_scored(world, tmp_path, capsys):
    _, data, ckpt = world
    dr, out = _copy(data, tmp_path / "DR", "all"), tmp_path / "out"
    assert main(["test", "--ckpt", str(ckpt), "--DR", str(dr), "--out", str(out), "--samples", "2",
                 "--quiet"]) == 0
    stdout = capsys.readouterr().out
    assert "Scores skipped" in stdout and "not scored" in stdout
    assert sorted(p.name for p in out.glob("samples_seq*.gif")) == ["samples_seq0.gif", "samples_seq1.gif",
                                                                    "samples_seq2.gif"]
    assert not (out / "samples.csv").exists()
    multi = json.loads((out / "summary.json").read_text())["multi_sample"]
    assert multi["samples"] == 2 and multi["mean"] == {} and multi["sequences"] == {}


def test_samples_with_some_ground_truth_score_those_sequences(world, tmp_path, capsys):
    _, data, ckpt = world
    dr, out = _copy(data, tmp_path / "DR", ["0"]), tmp_path / "out"
    with pytest.warns(UserWarning):
        assert main(["test", "--ckpt", str(ckpt), "--DR", str(dr), "--out", str(out), "--samples", "2",
                     "--quiet"]) == 0
    multi = json.loads((out / "summary.json").read_text())["multi_sample"]
    posterior = multi["mean"]["posterior"]
    assert (f"posterior bound              PSNR {posterior['psnr']:6.2f} dB  SSIM {posterior['ssim']:.4f}  "
            f"pose {posterior['psnr_pose']:.2f} dB  box {posterior['psnr_box']:.2f} dB"
            ) in capsys.readouterr().out
    assert sorted(multi["sequences"]) == ["1", "2"]
    assert {row[0] for row in _rows(out / "samples.csv")} == {"1", "2"}


def _drop_last_pose(dr, name):
    for sub in ("test_label", "test_gt"):
        (dr / "test" / sub / name / f"{LEN - 1}.png").unlink()


def test_a_missing_pose_image_is_named_and_no_shifted_submission_is_written(world, tmp_path, capsys):
    _, data, ckpt = world
    dr, out = _copy(data, tmp_path / "DR"), tmp_path / "out"
    _drop_last_pose(dr, "1")
    out.mkdir()
    (out / "submission.csv").write_text("stale\n")  # of an earlier run: must not pass for this one's
    assert main(["test", "--ckpt", str(ckpt), "--DR", str(dr), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("posevae: error: Test sequence 1 has 5 pose images in") and err.count("\n") == 1
    assert "where the others have 6" in err and "--allow_unequal_lengths" in err and "Traceback" not in err
    assert not (out / "submission.csv").exists()
    assert (out / "pred_seq1.gif").is_file() and (out / "seq1" / "frames" / "4.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["submission"] is None and summary["sequences"]["1"]["frames"] == 5


def test_unequal_lengths_are_written_when_asked(world, tmp_path, capsys):
    _, data, ckpt = world
    dr, out = _copy(data, tmp_path / "DR"), tmp_path / "out"
    _drop_last_pose(dr, "1")
    assert main(["test", "--ckpt", str(ckpt), "--DR", str(dr), "--out", str(out), "--quiet",
                 "--allow_unequal_lengths"]) == 0
    assert "Warning: Test sequence 1 has 5 pose images" in capsys.readouterr().out
    assert len(_rows(out / "submission.csv")) == 3 * LEN - 1


def test_report_and_demo_summary_of_a_run_tested_without_ground_truth(world, tmp_path, capsys):
    root, data, _ = world
    run = tmp_path / "run"
    assert main(["train", "--DR", str(data), "--save_root", str(run), "--preset", "tiny", "--frame_H", str(H),
                 "--frame_W", str(W), "--train_vi_len", "6", "--val_vi_len", "10", "--batch_size", "2",
                 "--num_epoch", "2", "--precision", "fp32", "--quiet"]) == 0
    dr = _copy(data, tmp_path / "DR", "all")
    assert main(["test", "--ckpt", str(run), "--DR", str(dr), "--out", str(run / "test"), "--quiet"]) == 0
    assert main(["report", str(run), "--out", str(tmp_path / "report"), "--no-gifs"]) == 0
    table = (tmp_path / "report" / "table.md").read_text()
    assert "nan" not in table.lower() and "None" not in table

    from posevae.jobs.demo import _print_summary

    test = json.loads((run / "test" / "summary.json").read_text())
    summary = {"gain_over_baseline_db": None, "seconds_total": 1.0, "val_psnr_pose": 15.0,
               "val_psnr_box": 16.0, "test_psnr_pose": test["mean_psnr_pose"],
               "test_psnr_box": test["mean_psnr_box"]}
    _print_summary(summary, test, 20.0, tmp_path, None)
    printed = capsys.readouterr().out
    assert "n/a" in printed and "test scores skipped: no ground truth" in printed
