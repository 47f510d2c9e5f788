"""Short runs just work: KL annealing cycles fitted to a run too short for the default 10 (issue 15, 3)."""

import json
import re

import pytest

import posevae.training.loop as train_module
from posevae.cli.main import main
from posevae.config import TrainConfig
from posevae.errors import UserError
from posevae.schedules import fitted_kl_cycles, kl_beta, trains_kl
from tests.conftest import ctrl_c_at_epoch
from tests.synthetic import make_lab_dataset

TINY = ["--preset", "tiny", "--frame_H", "16", "--frame_W", "32", "--train_vi_len", "6", "--val_vi_len", "10",
        "--batch_size", "2", "--precision", "fp32", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_lab_dataset(tmp_path_factory.mktemp("short") / "data", n_train=24, n_val=12, n_test=1,
                            test_len=4)


def test_two_epochs_without_cycles_fits_them_and_says_so(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--DR", str(data), "--save_root", str(run), *TINY, "--num_epoch", "2"]) == 0
    err = capsys.readouterr().err
    notices = [line for line in err.splitlines() if "cycle" in line]
    assert len(notices) == 1 and "1 cycle over 2 epochs" in notices[0], err
    train = json.loads((run / "config.json").read_text())["train"]
    assert train["kl_anneal_cycle"] == 1 and train["kl_anneal_type"] == "Cyclical"
    assert max(kl_beta(e, "Cyclical", 2, 1, train["kl_anneal_ratio"]) for e in range(2)) > 0


def test_fitted_cycles_are_kept_on_resume(data, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    real_tfr = ctrl_c_at_epoch(monkeypatch, 1)
    # Ctrl-C
    assert main(["train", "--DR", str(data), "--save_root", str(run), *TINY, "--num_epoch", "2"]) == 2
    capsys.readouterr()
    monkeypatch.setattr(train_module, "teacher_forcing_ratio", real_tfr)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # the stored, fitted config is accepted
    assert "cycle" not in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["Cyclical", "FuCyclical"])
def test_cycles_the_user_chose_keep_the_error_with_a_valid_fix(data, tmp_path, capsys, kind):
    args = ["train", "--DR", str(data), "--save_root", str(tmp_path / "run"), *TINY, "--num_epoch", "4",
            "--kl_anneal_type", kind, "--kl_anneal_cycle", "10"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("posevae: error:") and err.count("\n") == 1 and "beta = 0 in every epoch" in err
    suggested = int(re.search(r"--kl_anneal_cycle <= (\d+)", err).group(1))
    TrainConfig(num_epoch=4, kl_anneal_type=kind, kl_anneal_cycle=suggested)  # the fix itself is valid
    assert not (tmp_path / "run").exists()


def test_one_epoch_suggests_a_fix_that_is_valid(data, tmp_path, capsys):
    args = ["train", "--DR", str(data), "--save_root", str(tmp_path / "run"), *TINY, "--num_epoch", "1"]
    assert main(args) == 2  # no number of cycles trains the KL in one epoch, so nothing is fitted
    err = capsys.readouterr().err
    assert "--kl_anneal_cycle <=" not in err
    assert "--num_epoch 2" in err and "--kl_anneal_type None" in err
    TrainConfig(num_epoch=1, kl_anneal_type="None")
    TrainConfig(num_epoch=2, kl_anneal_cycle=fitted_kl_cycles("Cyclical", 2, 10, 0.5))  # what the CLI fits


@pytest.mark.parametrize("kind", ["Cyclical", "FuCyclical"])
def test_every_refusal_suggests_cycles_that_train_the_kl(kind):
    for epochs in range(1, 41):
        for cycles in range(1, 13):
            if trains_kl(kind, epochs, cycles, 0.5):
                TrainConfig(num_epoch=epochs, kl_anneal_type=kind, kl_anneal_cycle=cycles)
                continue
            with pytest.raises(UserError) as err:
                TrainConfig(num_epoch=epochs, kl_anneal_type=kind, kl_anneal_cycle=cycles)
            fix = re.search(r"--kl_anneal_cycle <= (\d+)", str(err.value))
            if epochs == 1:
                assert fix is None
                continue
            limit = int(fix.group(1))
            assert limit <= epochs // 2
            for c in range(1, limit + 1):  # every value the message allows
                TrainConfig(num_epoch=epochs, kl_anneal_type=kind, kl_anneal_cycle=c)


def test_fu_cyclical_all_zero_schedule_is_refused():
    assert not trains_kl("FuCyclical", 5, 10, 0.5)
    with pytest.raises(UserError, match="FuCyclical KL annealing with 10 cycles over 5 epochs"):
        TrainConfig(num_epoch=5, kl_anneal_type="FuCyclical", kl_anneal_cycle=10)
