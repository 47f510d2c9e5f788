"""`posevae demo` end to end on a tiny budget: it renders nothing when the data exists, trains, tests,
reports, prints the summary with the baseline, and a second call reuses the finished run."""

import csv
import dataclasses
import json
from pathlib import Path

from posevae.data.demo.dataset import render_demo_dataset
from posevae.jobs.demo import run_demo
from posevae.model.checkpoint import load_checkpoint

TINY = {"num_epoch": 2, "batch_size": 2, "partial": 1.0, "val_vi_len": 24,
        "precision": "fp32"}


def test_demo_runs_end_to_end_and_is_idempotent(tmp_path, capsys):
    data = render_demo_dataset(tmp_path / "data", n_train=64, n_val=24, n_test=1, test_len=12, progress=False)
    out = tmp_path / "run"
    summary = run_demo(out=out, data=data, device="cpu", progress=False, **TINY)
    printed = capsys.readouterr().out
    assert "baseline: repeat the first frame" in printed and "test PSNR" in printed
    assert "for 2 epochs" in printed and "(new run, fp32)" in printed  # the budget and precision it trains in
    assert json.loads((out / "summary.json").read_text())["test_psnr"] == summary["test_psnr"]
    for path in ("metrics.csv", "checkpoints/best.safetensors", "test/submission.csv",
                 "test/compare_seq0.gif",
                 "report/index.html", "report/figures/fig2_val_psnr.png"):
        assert (out / path).exists(), path
    table = (out / "report" / "table.md").read_text()
    assert f"{summary['test_psnr']:.2f}" in table  # the report finds the demo's test scores
    # the person metrics: validation's of the best epoch (metrics.csv), the test's means (test/summary.json)
    best_epoch = load_checkpoint(out / "checkpoints" / "best.safetensors").train_state["epoch"]
    with open(out / "metrics.csv") as f:
        best_row = next(r for r in csv.DictReader(f) if int(r["epoch"]) == best_epoch)
    test = json.loads((out / "test" / "summary.json").read_text())
    for key in ("psnr_pose", "psnr_box"):
        assert summary[f"val_{key}"] == float(best_row[f"val_{key}"])
        assert summary[f"test_{key}"] == test[f"mean_{key}"] is not None
    assert printed.count("pose region / person box") == 2
    assert f"{summary['test_psnr_pose']:6.2f} / {summary['test_psnr_box']:.2f} dB" in printed
    assert f"| {summary['test_psnr_pose']:.2f} / {summary['test_psnr_box']:.2f} |" in table
    # the recipe docs/quality.md chose
    trained = load_checkpoint(out / "checkpoints" / "last.safetensors").config
    assert trained.model.skips and not trained.model.warp and trained.model.downsample == 4
    assert (trained.train.person_weight, trained.train.kl_anneal_type) == (1.0, "None")
    again = run_demo(out=out, data=data, device="cpu", progress=False, **TINY)
    assert "Training already finished" in capsys.readouterr().out
    assert again["test_psnr"] == summary["test_psnr"]


def test_the_demo_says_why_a_cpu_without_bf16_instructions_takes_longer(monkeypatch):
    from posevae import device
    from posevae.jobs.demo import AVX2_NOTE, _precision_note, demo_config

    train = demo_config(Path("data"), Path("run"), "cpu").train
    monkeypatch.setattr(device, "fast_bf16_available", lambda _: True)
    assert _precision_note(train) == "bf16 autocast"
    monkeypatch.setattr(device, "fast_bf16_available", lambda _: False)
    assert "no bf16 instructions" in _precision_note(train) and AVX2_NOTE in _precision_note(train)
    assert _precision_note(dataclasses.replace(train, precision="fp32")) == "fp32"  # chosen by the user
