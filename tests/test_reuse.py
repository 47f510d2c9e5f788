"""train_or_reuse, the one way the jobs train, resume or reuse a run: what it does with each folder, that
it reads a run's epoch from the checkpoint's metadata alone, and that `posevae demo` and `compare` go
through it."""

import dataclasses
from pathlib import Path

import pytest
import safetensors.torch

import posevae.model.checkpoint as checkpoint_module
import posevae.training.loop as train_module
import posevae.training.reuse as reuse_module
from posevae.config import DataConfig, RunConfig, TrainConfig
from posevae.errors import UserError
from posevae.jobs.compare import compare
from posevae.jobs.demo import run_demo
from posevae.model.checkpoint import read_checkpoint_info
from posevae.training.reuse import train_or_reuse
from tests.conftest import ctrl_c_at_epoch, tiny_model_config
from tests.synthetic import make_lab_dataset
from tests.test_train import rows, tiny_run


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_lab_dataset(tmp_path_factory.mktemp("data"), n_train=48, n_val=10)


def with_train(cfg: RunConfig, **changes) -> RunConfig:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **changes))


def test_train_or_reuse_trains_resumes_reuses_and_refuses_another_config(dataset, tmp_path, monkeypatch):
    cfg = tiny_run(dataset, tmp_path / "run", num_epoch=2)
    last = tmp_path / "run" / "checkpoints" / "last.safetensors"
    announced: list[str] = []
    real_tfr = ctrl_c_at_epoch(monkeypatch, 1)
    with pytest.raises(UserError, match="Interrupted during epoch 2"):
        train_or_reuse(cfg, progress=False, announce=announced.append)
    assert announced == ["trained"] and [r["epoch"] for r in rows(tmp_path / "run")] == ["0"]

    monkeypatch.setattr(train_module, "teacher_forcing_ratio", real_tfr)
    with pytest.raises(UserError, match=r"holds an interrupted run of another config \(train.lr: 0.001 != "
                                        r"0.0005; stored != requested\).*another --out"):
        train_or_reuse(with_train(cfg, lr=5e-4), progress=False)
    assert train_or_reuse(cfg, progress=False, announce=announced.append) == "resumed"
    assert announced == ["trained", "resumed"] and [r["epoch"] for r in rows(tmp_path / "run")] == ["0", "1"]

    finished = last.stat().st_mtime_ns
    assert train_or_reuse(cfg, progress=False, announce=announced.append) == "done"
    assert train_or_reuse(with_train(cfg, device="cpu"), progress=False) == "done"  # a change it may have
    assert announced[-1] == "done" and last.stat().st_mtime_ns == finished  # not trained again
    for other, diff in ((with_train(cfg, lr=5e-4), "train.lr: 0.001 != 0.0005"),
                        (with_train(cfg, num_epoch=3), "train.num_epoch: 2 != 3")):
        with pytest.raises(UserError, match=rf"holds a finished run of another config \({diff}; stored != "
                                            r"requested\): use another --out, or delete that run folder"):
            train_or_reuse(other, progress=False)
    assert last.stat().st_mtime_ns == finished


def test_a_run_s_epoch_is_read_without_loading_its_tensors(dataset, tmp_path, monkeypatch):
    cfg = tiny_run(dataset, tmp_path / "run", num_epoch=1, kl_anneal_type="None")
    assert train_or_reuse(cfg, progress=False) == "trained"

    def no_tensors(*args, **kwargs):
        raise AssertionError("the checkpoint's tensors were loaded")

    monkeypatch.setattr(safetensors.torch, "load_file", no_tensors)
    monkeypatch.setattr(checkpoint_module, "load_file", no_tensors)
    monkeypatch.setattr(checkpoint_module, "load_checkpoint", no_tensors)
    info = read_checkpoint_info(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert info.train_state["epoch"] == 0 and info.config.train.num_epoch == 1
    assert train_or_reuse(cfg, progress=False) == "done"


def test_an_unreadable_last_checkpoint_says_which_and_how_to_start_again(tmp_path):
    cfg = RunConfig(model=tiny_model_config(), train=TrainConfig(save_root=str(tmp_path / "run")))
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"last.safetensors cannot be read .*Or delete .*run to train"):
        train_or_reuse(cfg, progress=False)


class Called(Exception):
    """Raised by the stand-in for train_or_reuse: the job got there, nothing else is needed."""


def stand_in(monkeypatch, outcome: str) -> list[RunConfig]:
    """Replace train_or_reuse with one that records the config, announces ``outcome`` and stops the job."""
    calls: list[RunConfig] = []

    def recording(cfg, *, progress=True, announce=None):
        calls.append(cfg)
        if announce is not None:
            announce(outcome)
        raise Called

    monkeypatch.setattr(reuse_module, "train_or_reuse", recording)
    return calls


@pytest.mark.parametrize(("outcome", "said"), [("trained", "(new run, fp32)"),
                                               ("resumed", "(resuming, fp32)"),
                                               ("done", "Training already finished")])
def test_the_demo_trains_resumes_or_reuses_through_train_or_reuse(tmp_path, monkeypatch, capsys, outcome,
                                                                   said):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "demo.json").write_text("{}")  # an existing dataset: nothing is rendered
    calls = stand_in(monkeypatch, outcome)
    with pytest.raises(Called):
        run_demo(out=tmp_path / "run", data=tmp_path / "data", device="cpu", progress=False,
                 num_epoch=2, precision="fp32")
    assert [c.train.save_root for c in calls] == [str(tmp_path / "run")]
    assert calls[0].train.num_epoch == 2
    assert said in capsys.readouterr().out


def test_compare_trains_resumes_or_reuses_through_train_or_reuse(dataset, tmp_path, monkeypatch):
    base = RunConfig(model=tiny_model_config(), data=DataConfig(DR=str(dataset)), train=TrainConfig(lr=5e-4))
    calls = stand_in(monkeypatch, "done")
    with pytest.raises(Called):
        compare(base, tmp_path, ["Cyclical"], progress=False, gifs=False)
    assert [(c.train.save_root, c.train.kl_anneal_type, c.train.lr) for c in calls] == [
        (str(tmp_path / "runs" / "Cyclical"), "Cyclical", 5e-4)]
