"""The training loop through its public function: files, resume, refusals, NaN guard."""

import csv
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

import posevae.training.loop as train_module
import posevae.training.step as step_module
from posevae.config import DataConfig, RunConfig, TrainConfig
from posevae.errors import UserError
from posevae.model.checkpoint import load_checkpoint
from posevae.run_folder import METRIC_COLUMNS
from posevae.training.loop import train
from tests.conftest import ctrl_c_at_epoch, tiny_model_config
from tests.synthetic import make_lab_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_lab_dataset(tmp_path_factory.mktemp("data"), n_train=48, n_val=10)


def tiny_run(dataset: Path, save_root: Path, **train_overrides) -> RunConfig:
    train_cfg = {"save_root": str(save_root), "batch_size": 2, "num_epoch": 3, "kl_anneal_cycle": 1,
                 "per_save": 2, "precision": "fp32", "seed": 3}
    train_cfg.update(train_overrides)
    data = DataConfig(DR=str(dataset), train_vi_len=6, val_vi_len=10)
    return RunConfig(model=tiny_model_config(), data=data,
                     train=TrainConfig(**train_cfg))


def rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_train_writes_metrics_checkpoints_and_tensorboard(dataset, tmp_path):
    cfg = tiny_run(dataset, tmp_path / "run")
    summary = train(cfg, progress=False)
    run = tmp_path / "run"
    metrics = rows(run)
    assert [int(r["epoch"]) for r in metrics] == [0, 1, 2]
    for r in metrics:
        for key in ("loss", "mse", "kl", "beta", "tfr", "lr", "val_psnr", "val_mse", "val_kl", "val_loss",
                    "seconds",
                    "val_psnr_pose", "val_psnr_box"):
            assert r[key] != "" and float(r[key]) == float(r[key])  # present and not NaN
    assert float(metrics[-1]["lr"]) < float(metrics[0]["lr"])  # cosine annealing
    # Cyclical, 1 cycle of 3 epochs, ratio 0.5
    assert [float(r["beta"]) for r in metrics] == [0.0, 0.666667, 1.0]
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"last.safetensors", "best.safetensors",
                                                                 "epoch_2.safetensors"}
    assert list((run / "tb").glob("events.out.tfevents.*"))
    per_frame = (run / "val_psnr_per_frame.csv").read_text().splitlines()
    assert per_frame[0] == "frame,psnr,psnr_pose,psnr_box" and len(per_frame) == 1 + 9  # frames 1..9 of 10
    best = load_checkpoint(run / "checkpoints" / "best.safetensors")
    assert best.train_state["best_psnr"] == pytest.approx(summary["best_val_psnr"])
    assert best.config == cfg
    # the person metrics of the best epoch are the means of its per-frame columns
    best_row = next(r for r in metrics if int(r["epoch"]) == best.train_state["epoch"])
    with open(run / "val_psnr_per_frame.csv") as f:
        curve = list(csv.DictReader(f))
    for key in ("psnr", "psnr_pose", "psnr_box"):
        mean = sum(float(r[key]) for r in curve) / len(curve)  # every synthetic label has a pose
        assert float(best_row[f"val_{key}"]) == pytest.approx(mean, abs=1e-4), key
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = event_accumulator.EventAccumulator(str(run / "tb"))
    events.Reload()
    for tag in ("val_psnr", "val_psnr_pose", "val_psnr_box"):
        assert [e.step for e in events.Scalars(tag)] == [0, 1, 2], tag


@pytest.mark.parametrize("step", ["batched", "sequential"])
def test_interrupted_and_resumed_equals_uninterrupted(dataset, tmp_path, monkeypatch, step):
    full = tiny_run(dataset, tmp_path / "full", step=step, tfr_sde=1, tfr_d_step=0.5)  # TF on, drawn, off
    train(full, progress=False)

    cut = tiny_run(dataset, tmp_path / "cut", step=step, tfr_sde=1, tfr_d_step=0.5)
    real_tfr = ctrl_c_at_epoch(monkeypatch, 2)
    with pytest.raises(UserError, match="resume with: posevae train --resume"):
        train(cut, progress=False)
    assert len(rows(tmp_path / "cut")) == 2
    monkeypatch.setattr(train_module, "teacher_forcing_ratio", real_tfr)
    train(cut, resume=True, progress=False)

    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.safetensors")
    b = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.safetensors")
    assert a.model_state.keys() == b.model_state.keys()
    for name in a.model_state:
        torch.testing.assert_close(a.model_state[name], b.model_state[name], rtol=1e-5, atol=1e-6, msg=name)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(rows(tmp_path / "full")) == strip(rows(tmp_path / "cut"))


def test_the_run_records_its_step_and_a_config_from_before_reads_as_sequential(dataset, tmp_path):
    """--step is in the run's config; a config stored before the batched step existed trained step by step,
    so it reads back as sequential and a resumed old run continues as it trained."""
    train(tiny_run(dataset, tmp_path / "run", num_epoch=1, kl_anneal_type="None", step="batched"),
          progress=False)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["train"]["step"] == "batched"
    del stored["train"]["step"]
    assert RunConfig.from_dict(stored).train.step == "sequential"
    assert RunConfig().train.step == "sequential"  # what validation supports at the lab's recipe
    from posevae.jobs.demo import demo_config

    assert demo_config(Path("d"), Path("r"), "cpu").train.step == "auto"  # and at the demo's


def test_resume_of_a_run_whose_metrics_csv_lacks_the_person_metrics(dataset, tmp_path, monkeypatch):
    """A run folder of a posevae from before val_psnr_pose / val_psnr_box resumes: its rows keep empty cells
    there, the new epochs fill them."""
    cfg = tiny_run(dataset, tmp_path / "run", num_epoch=2)
    real_tfr = ctrl_c_at_epoch(monkeypatch, 1)
    with pytest.raises(UserError, match="resume with"):
        train(cfg, progress=False)
    old_columns = [c for c in METRIC_COLUMNS if c not in ("val_psnr_pose", "val_psnr_box")]
    old_rows = [{k: r[k] for k in old_columns} for r in rows(tmp_path / "run")]
    with open(tmp_path / "run" / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=old_columns)
        writer.writeheader()
        writer.writerows(old_rows)
    monkeypatch.setattr(train_module, "teacher_forcing_ratio", real_tfr)
    train(cfg, resume=True, progress=False)
    metrics = rows(tmp_path / "run")
    assert [r["epoch"] for r in metrics] == ["0", "1"]
    assert {k: metrics[0][k] for k in old_columns} == old_rows[0]
    assert metrics[0]["val_psnr_pose"] == metrics[0]["val_psnr_box"] == ""
    assert float(metrics[1]["val_psnr_pose"]) > 0 and float(metrics[1]["val_psnr_box"]) > 0


def test_resume_refuses_another_config_and_finished_runs(dataset, tmp_path):
    cfg = tiny_run(dataset, tmp_path / "run", num_epoch=2)
    train(cfg, progress=False)
    with pytest.raises(UserError, match="already finished"):
        train(cfg, resume=True, progress=False)
    other = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr=5e-4))
    with pytest.raises(UserError, match=r"train.lr: 0.001 != 0.0005"):
        train(other, resume=True, progress=False)
    with pytest.raises(UserError, match="already holds a run"):
        train(cfg, progress=False)
    with pytest.raises(UserError, match="Nothing to resume"):
        train(tiny_run(dataset, tmp_path / "empty"), resume=True, progress=False)


def poison_from_epoch(monkeypatch, first_bad_epoch: int) -> None:
    """Make every loss NaN from ``first_bad_epoch`` on."""
    state = {"bad": False}
    real_tfr, real_mse = train_module.teacher_forcing_ratio, step_module.reconstruction_mse

    def tfr(epoch, *args):
        state["bad"] = epoch >= first_bad_epoch
        return real_tfr(epoch, *args)

    monkeypatch.setattr(train_module, "teacher_forcing_ratio", tfr)
    monkeypatch.setattr(step_module, "reconstruction_mse",
                        lambda p, t: real_mse(p, t) * (float("nan") if state["bad"] else 1.0))


def test_non_finite_losses_stop_the_run_and_the_last_good_checkpoint_is_intact(dataset, tmp_path,
                                                                                monkeypatch):
    poison_from_epoch(monkeypatch, 1)
    checkpoints = tmp_path / "run" / "checkpoints"
    with pytest.raises(train_module.TrainingDiverged, match="3 non-finite losses in a row in epoch 2"):
        train(tiny_run(dataset, tmp_path / "run", max_bad_steps=3), progress=False)
    last = load_checkpoint(checkpoints / "last.safetensors")
    assert last.train_state["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in last.model_state.values())


def test_divergence_in_the_first_epoch_does_not_claim_a_checkpoint(dataset, tmp_path, monkeypatch):
    poison_from_epoch(monkeypatch, 0)
    with pytest.raises(train_module.TrainingDiverged,
                       match="No epoch finished, so no checkpoint was written"):
        train(tiny_run(dataset, tmp_path / "run", max_bad_steps=2), progress=False)
    assert not (tmp_path / "run" / "checkpoints" / "last.safetensors").exists()


@pytest.mark.parametrize("kl_anneal_type,says_beta", [("Cyclical", True), ("None", False)])
def test_divergence_at_beta_0_names_the_schedule_and_the_fix(dataset, tmp_path, monkeypatch, kl_anneal_type,
                                                             says_beta):
    """Epoch 1 of a cyclical schedule has beta = 0, where the posterior is held by nothing."""
    poison_from_epoch(monkeypatch, 0)
    with pytest.raises(train_module.TrainingDiverged) as raised:
        train(tiny_run(dataset, tmp_path / "run", max_bad_steps=2, kl_anneal_type=kl_anneal_type),
              progress=False)
    message = str(raised.value)
    assert ("Beta was 0 in this epoch (Cyclical KL annealing)" in message) == says_beta
    assert ("--kl_anneal_type None" in message) == says_beta


def test_non_finite_steps_are_skipped_and_counted(dataset, tmp_path, monkeypatch):
    poison_from_epoch(monkeypatch, 1)
    train(tiny_run(dataset, tmp_path / "run", num_epoch=2, max_bad_steps=1000), progress=False)
    metrics = rows(tmp_path / "run")
    assert int(metrics[0]["skipped_steps"]) == 0
    assert int(metrics[1]["skipped_steps"]) == 48 // 6 // 2  # every batch of epoch 2
    epoch0 = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.safetensors").model_state
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors").model_state
    for name, value in last.items():
        if "running" not in name and "num_batches" not in name:  # BatchNorm statistics still update
            assert torch.equal(value, epoch0[name]), name


def test_fast_train_uses_a_fraction_of_the_clips_first(dataset, tmp_path, monkeypatch):
    seen = []
    real_loader = train_module.DataLoader
    monkeypatch.setattr(train_module, "DataLoader",
                        lambda ds, **kw: seen.append(len(ds)) or real_loader(ds, **kw))
    cfg = tiny_run(dataset, tmp_path / "run", num_epoch=2)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, fast_train=True, fast_partial=0.5,
                                                            fast_train_epoch=1))
    train(cfg, progress=False)
    assert seen == [4, 8]  # 48 frames -> 8 clips of 6; the first epoch sees half of them
    tiny = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, fast_partial=0.15),
                               train=dataclasses.replace(cfg.train, save_root=str(tmp_path / "other")))
    with pytest.raises(UserError, match="with --fast_partial"):
        train(tiny, progress=False)


def test_wandb_logs_every_epoch_when_asked_and_says_how_to_install_it(dataset, tmp_path, monkeypatch):
    import sys
    import types

    logged, finished = [], []
    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: types.SimpleNamespace(log=lambda d, step: logged.append((step, d)),
                                                   finish=lambda: finished.append(True))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    train(tiny_run(dataset, tmp_path / "run", num_epoch=2, log_wandb=True), progress=False)
    assert [step for step, _ in logged] == [0, 1] and finished == [True]
    assert {"loss", "val_psnr", "beta", "tfr", "lr"} <= set(logged[0][1])
    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails
    with pytest.raises(UserError, match="pip install wandb"):
        train(tiny_run(dataset, tmp_path / "other", num_epoch=2, log_wandb=True), progress=False)


def test_compile_trains_the_compiled_model_and_saves_plain_weights(dataset, tmp_path, monkeypatch):
    """--compile: the training forward goes through torch.compile (here dynamo with the eager backend, to
    keep the test fast; the default inductor backend is for GPUs), with the same losses as eager, and the
    checkpoint holds the model's own parameter names (no _orig_mod. prefix), so it loads anywhere."""
    real_compile = torch.compile
    compiled = []

    def compile_eager(model, **kwargs):
        compiled.append(model)
        return real_compile(model, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", compile_eager)
    train(tiny_run(dataset, tmp_path / "compiled", num_epoch=2, compile=True), progress=False)
    train(tiny_run(dataset, tmp_path / "eager", num_epoch=2), progress=False)
    assert len(compiled) == 1
    a, b = rows(tmp_path / "compiled"), rows(tmp_path / "eager")
    for row_a, row_b in zip(a, b, strict=True):
        for key in ("loss", "mse", "kl", "val_psnr"):
            assert float(row_a[key]) == pytest.approx(float(row_b[key]), rel=1e-4), key
    state = load_checkpoint(tmp_path / "compiled" / "checkpoints" / "last.safetensors").model_state
    eager = load_checkpoint(tmp_path / "eager" / "checkpoints" / "last.safetensors")
    assert state.keys() == eager.model_state.keys()


def test_an_epoch_whose_every_step_was_skipped_logs_nan_losses(dataset, tmp_path, monkeypatch):
    """No step trained: the epoch's loss, mse, kl (and teacher-forcing share) have no mean; 0 would read as
    a perfect loss."""
    poison_from_epoch(monkeypatch, 1)
    train(tiny_run(dataset, tmp_path / "run", num_epoch=2, max_bad_steps=1000), progress=False)
    first, skipped = rows(tmp_path / "run")
    for key in ("loss", "mse", "kl", "teacher_forcing"):
        assert math.isfinite(float(first[key])) and math.isnan(float(skipped[key])), key
    assert int(skipped["skipped_steps"]) == 48 // 6 // 2 and math.isfinite(float(skipped["val_psnr"]))


def test_a_skipped_step_leaves_the_batchnorm_statistics_alone(dataset, tmp_path, monkeypatch):
    """A skipped step changes nothing: not the weights, and not the BatchNorm running statistics its forward
    passes updated (they are put back), so the epoch of skipped steps ends with the previous epoch's model."""
    poison_from_epoch(monkeypatch, 1)
    train(tiny_run(dataset, tmp_path / "run", num_epoch=2, max_bad_steps=1000), progress=False)
    epoch0 = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.safetensors")
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert (epoch0.train_state["epoch"], last.train_state["epoch"]) == (0, 1)
    statistics = [name for name in last.model_state if "running" in name or "num_batches" in name]
    assert statistics
    for name, value in last.model_state.items():
        assert torch.equal(value, epoch0.model_state[name]), name


def test_validation_runs_in_fp32_whatever_the_training_precision(dataset, tmp_path):
    """--precision is for the training steps; validation picks the best checkpoint, so it scores in fp32 as
    `posevae test` does: the logged val_psnr is what an fp32 rollout of the saved model gives."""
    from posevae.data.lab import load_val_video
    from posevae.model.vae import PoseVAE
    from posevae.training.validation import evaluate_video

    cfg = tiny_run(dataset, tmp_path / "run", num_epoch=2, precision="bf16")
    train(cfg, progress=False)
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")
    model = PoseVAE(cfg.model).to(memory_format=torch.channels_last)
    model.load_state_dict(last.model_state)
    video = load_val_video(cfg.data.DR, cfg.model.frame_H, cfg.model.frame_W, cfg.data.val_vi_len)
    fp32 = evaluate_video(model, video, device=torch.device("cpu"), beta=1.0,
                          noise_scale=cfg.sample.noise_scale, seed=cfg.sample.sample_seed)
    assert float(rows(tmp_path / "run")[-1]["val_psnr"]) == pytest.approx(fp32["val_psnr"], rel=1e-5)


def test_a_missing_tensorboard_is_said_once(tmp_path, monkeypatch):
    import sys
    import warnings

    from posevae.run_folder import RunFolder
    from posevae.training import logs

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the import fails
    monkeypatch.setattr(logs, "_warned_no_tensorboard", False)
    with pytest.warns(UserWarning, match="TensorBoard cannot be imported"):
        logs._open_tensorboard(RunFolder(tmp_path / "a"), 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        writer = logs._open_tensorboard(RunFolder(tmp_path / "b"), 0)
    writer.add_scalar("loss", 1.0, 0)  # accepts and drops everything
    writer.close()
