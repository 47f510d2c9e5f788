"""End to end through the real command line: train -> interrupt -> resume -> test, and --help."""

import argparse
import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

import posevae.training.loop as train_module
from posevae.cli.main import main
from posevae.metrics import psnr
from posevae.model.checkpoint import load_checkpoint
from posevae.model.vae import PoseVAE
from tests.conftest import ctrl_c_at_epoch
from tests.synthetic import make_lab_dataset

TINY = ["--preset", "tiny", "--frame_H", "16", "--frame_W", "32", "--train_vi_len", "6", "--val_vi_len", "10",
        "--batch_size", "2", "--num_epoch", "3", "--kl_anneal_cycle", "1", "--precision", "fp32", "--quiet"]


def test_help_lists_commands_and_lab_flags(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "test", "demo", "data"):
        assert command in out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in ("--DR", "--save_root", "--kl_anneal_type", "--tfr_sde", "--F_dim", "--resume", "--preset"):
        assert flag in out


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    argv = ["train", "--DR", str(tmp_path / "nowhere"), "--save_root", str(tmp_path / "run"), *TINY]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("posevae: error:") and "Traceback" not in err and "nowhere" in err
    assert main(["train", "--DR", str(tmp_path), "--lr", "-1", "--save_root", str(tmp_path / "r")]) == 2
    assert "--lr must be positive" in capsys.readouterr().err


def test_train_interrupt_resume_test(tmp_path, monkeypatch, capsys):
    data = make_lab_dataset(tmp_path / "data", n_train=36, n_val=10, n_test=2, test_len=7)
    run = tmp_path / "run"
    real_tfr = ctrl_c_at_epoch(monkeypatch, 2)
    assert main(["train", "--DR", str(data), "--save_root", str(run), *TINY]) == 2
    assert f"posevae train --resume {run}" in capsys.readouterr().err
    monkeypatch.setattr(train_module, "teacher_forcing_ratio", real_tfr)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert main(["train", "--resume", str(run), "--quiet"]) == 2  # finished: says so
    assert "already finished" in capsys.readouterr().err

    with open(run / "metrics.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2]
    ckpt = load_checkpoint(run / "checkpoints" / "best.safetensors")
    PoseVAE(ckpt.config.model).load_state_dict(ckpt.model_state)

    out = tmp_path / "test"
    assert main(["test", "--ckpt", str(run / "checkpoints" / "best.safetensors"), "--DR", str(data),
                 "--out", str(out), "--quiet"]) == 0
    rows = np.loadtxt(out / "submission.csv", delimiter=",", skiprows=1, dtype=np.int64)
    assert rows.shape == (2 * 7, 1 + 3 * 16 * 32)
    assert rows[:, 0].tolist() == list(range(14))
    assert rows[:, 1:].min() >= 0 and rows[:, 1:].max() <= 255
    gifs = sorted(out.glob("pred_seq*.gif"))
    assert len(gifs) == 2
    for gif in gifs:  # Pillow merges identical consecutive frames: count the playing time instead
        with Image.open(gif) as im:
            durations = []
            for i in range(im.n_frames):
                im.seek(i)
                durations.append(im.info["duration"])
        assert sum(durations) == 7 * 50  # 7 frames at 20 fps
    # the PSNR written in scores.csv equals a recomputation from the submission's pixels and the true frames
    with open(out / "scores.csv") as f:
        scores = list(csv.DictReader(f))
    seq0 = torch.from_numpy(rows[:7, 1:].reshape(7, 3, 16, 32)).float() / 255
    truth = torch.stack([torch.from_numpy(np.array(Image.open(data / "test" / "test_gt" / "0" / f"{k}.png")))
                         .permute(2, 0, 1) for k in range(7)]).float() / 255
    recomputed = psnr(seq0[1:], truth[1:])
    written = [float(r["psnr"]) for r in scores if r["sequence"] == "0"]
    assert written == pytest.approx(recomputed.tolist(), abs=1e-3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mean_psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in scores]), abs=1e-3)
    # the person metrics: scores.csv columns, their means in summary.json and in the printed summary
    printed = capsys.readouterr().out
    for key, words in (("psnr_pose", "pose-region PSNR"), ("psnr_box", "person-box PSNR")):
        assert summary[f"mean_{key}"] == pytest.approx(np.mean([float(r[key]) for r in scores]), abs=1e-3)
        assert f"{words} {summary[f'mean_{key}']:.2f} dB" in printed


def test_demo_passes_seed_epochs_and_prior_to_the_job(tmp_path, monkeypatch):
    import posevae.jobs.demo as demo_job

    calls = []
    monkeypatch.setattr(demo_job, "run_demo", lambda **kw: calls.append(kw))
    assert main(["demo", "--out", str(tmp_path / "r"), "--seed", "2", "--epochs", "3", "--prior", "learned",
                 "--quiet"]) == 0
    assert main(["demo", "--out", str(tmp_path / "r1")]) == 0
    (seeded, default) = calls
    chosen = (seeded["seed"], seeded["num_epoch"], seeded["prior"], seeded["progress"])
    assert chosen == (2, 3, "learned", False)
    assert "seed" not in default and "num_epoch" not in default  # the demo's own budget and seed
    assert demo_job.demo_config(tmp_path / "d", tmp_path / "r", "cpu").train.seed == 1
    # the seed reaches the training config
    cfg = demo_job.demo_config(tmp_path / "d", tmp_path / "r", "cpu", seed=2)
    assert cfg.train.seed == 2


def test_the_old_frame_skip_flags_are_aliases_of_prev_frame_skip():
    from posevae.cli.options import build_config
    from posevae.cli.train import add_train_command

    parser = argparse.ArgumentParser()
    add_train_command(parser.add_subparsers(dest="command"))
    for argv, expected in ((["--frame_skip"], True), (["--frame-skip"], True), (["--prev_frame_skip"], True),
                           (["--preset", "fast", "--no-frame_skip"], False),
                           (["--preset", "fast", "--no-prev-frame-skip"], False),
                           (["--preset", "fast"], True)):
        args = parser.parse_args(["train", "--DR", "data", *argv])
        assert build_config(args, preset=args.preset).model.prev_frame_skip is expected, argv


def test_warnings_of_a_command_are_one_line_each():
    """As the command line shows them (a fresh interpreter: pytest records warnings itself)."""
    import subprocess
    import sys

    code = ("import warnings\n"
            "from posevae.cli.main import one_line_warnings\n"
            "with one_line_warnings():\n"
            "    warnings.warn('the poses are drawn as demo,\\nbut the model was trained on openpose')\n"
            "warnings.warn('after the command', UserWarning)\n")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    lines = err.splitlines()
    assert lines[0] == "posevae: warning: the poses are drawn as demo, but the model was trained on openpose"
    assert "UserWarning: after the command" in lines[1]  # outside the command line: Python's own format
