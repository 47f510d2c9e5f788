"""torchrun training: two CPU processes (gloo) train, agree on the weights after every step, write one run."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from tests.synthetic import make_lab_dataset

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="needs torch.distributed with gloo")


def torchrun_train(dataset: Path, run: Path, hashes: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "POSEVAE_DEBUG_WEIGHT_HASH_DIR": str(hashes)}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "posevae", "train", "--DR", str(dataset), "--save_root", str(run), "--preset", "tiny",
           "--frame_H", "16", "--frame_W", "32", "--train_vi_len", "6", "--val_vi_len", "10",
           "--batch_size", "2", "--num_epoch", "2", "--kl_anneal_cycle", "1", "--precision", "fp32",
           "--quiet",
           *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


def test_two_gloo_processes_train_in_step_and_write_one_run(tmp_path):
    dataset = make_lab_dataset(tmp_path / "data", n_train=48, n_val=10)
    run, hashes = tmp_path / "run", tmp_path / "hashes"
    result = torchrun_train(dataset, run, hashes)
    assert result.returncode == 0, result.stdout + result.stderr

    with open(run / "metrics.csv") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1"]  # one writer: no duplicated rows
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"last.safetensors", "best.safetensors"}
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1
    assert result.stdout.count("Trained 2 epochs") == 1  # rank 0 reports

    rank0 = (hashes / "rank0.txt").read_text().splitlines()
    rank1 = (hashes / "rank1.txt").read_text().splitlines()
    # 8 clips of 6 frames, 4 per rank, batch 2: 2 optimizer steps per epoch
    assert len(rank0) == 4 and rank0 == rank1
    assert len({line.split()[-1] for line in rank0}) == len(rank0)  # the weights did change every step


def test_a_user_error_stops_every_rank(tmp_path):
    dataset = make_lab_dataset(tmp_path / "data", n_train=24, n_val=10)  # 4 clips: 2 per rank
    result = torchrun_train(dataset, tmp_path / "run", tmp_path / "hashes", "--batch_size", "3")
    assert result.returncode != 0
    assert "--batch_size is per process" in result.stderr
    assert not (tmp_path / "run").exists()


def test_resume_under_torchrun_continues_exactly(tmp_path):
    """A 2-process run resumed from the checkpoint of its first epoch ends where the uninterrupted run ends.

    The interrupted run is made from the uninterrupted one: what a run killed during epoch 2 leaves behind
    is the checkpoint of epoch 1 (epoch_1.safetensors, written as last.safetensors at the time).
    """
    import shutil

    from safetensors.torch import load_file

    dataset = make_lab_dataset(tmp_path / "data", n_train=48, n_val=10)
    full, hashes = tmp_path / "full", tmp_path / "hashes_full"
    result = torchrun_train(dataset, full, hashes, "--per_save", "1")
    assert result.returncode == 0, result.stdout + result.stderr

    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    shutil.copy(cut / "checkpoints" / "epoch_1.safetensors", cut / "checkpoints" / "last.safetensors")
    (cut / "checkpoints" / "epoch_2.safetensors").unlink()
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "POSEVAE_DEBUG_WEIGHT_HASH_DIR": str(tmp_path / "hashes_cut")}
    resumed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                              "--standalone",
                              "-m", "posevae", "train", "--resume", str(cut), "--quiet"],
                             env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed.stdout.count("Trained 2 epochs") == 1

    # both ranks replay epoch 2's steps with the weights of the uninterrupted run
    full_hashes = (hashes / "rank0.txt").read_text().splitlines()
    for rank in (0, 1):
        assert (tmp_path / "hashes_cut" / f"rank{rank}.txt").read_text().splitlines() == full_hashes[2:]
    a = load_file(str(full / "checkpoints" / "last.safetensors"))
    b = load_file(str(cut / "checkpoints" / "last.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with open(cut / "metrics.csv") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1"]
