"""No data lost: a real `posevae train` process is SIGKILLed at random moments and resumed, many times.

Two independent chains run side by side (the test machine may have two cores), each killed
``KILLS_PER_CHAIN`` times (10 SIGKILLs in all) at seeded random moments: some during start-up (data decoding,
cache writing, before any checkpoint exists, when the run is started afresh), most after training started,
spread over the epochs and so over the checkpoint, metrics and per-frame CSV saves. After every kill each
checkpoint file must load, and `posevae train --resume RUN` (or a fresh start when no checkpoint exists yet)
must carry on. A third, uninterrupted process gives the reference: the killed-and-resumed runs must end with
the same weights and the same metrics.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from posevae.model.checkpoint import load_checkpoint
from tests.synthetic import make_lab_dataset

N_EPOCH = 5
CHAINS = 2
KILLS_PER_CHAIN = 5  # 10 kills in all
EPOCH_S = 0.45  # a first guess at one epoch on one core; each chain then measures its own epochs
MAX_STARTS = 40  # per chain, so a bug cannot loop forever

TRAIN = ["--preset", "tiny", "--frame_H", "16", "--frame_W", "32", "--train_vi_len", "6",
         "--val_vi_len", "10",
         "--batch_size", "2", "--num_epoch", str(N_EPOCH), "--kl_anneal_cycle", "1", "--precision", "fp32",
         "--per_save", "1", "--seed", "3", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
ROOT = Path(__file__).resolve().parents[1]


def command(data: Path, run: Path) -> list[str]:
    last = run / "checkpoints" / "last.safetensors"
    if last.exists():
        return [sys.executable, "-m", "posevae", "train", "--resume", str(run), "--quiet"]
    # killed before the first checkpoint: start afresh (train refuses only a folder holding a checkpoint)
    return [sys.executable, "-m", "posevae", "train", "--DR", str(data), "--save_root", str(run),
            "--cache_dir", str(run.parent / f"{run.name}_cache"), *TRAIN]


def epochs_done(run: Path) -> int:
    last = run / "checkpoints" / "last.safetensors"
    return load_checkpoint(last).train_state["epoch"] + 1 if last.exists() else 0


def finished(run: Path) -> bool:
    last = run / "checkpoints" / "last.safetensors"
    return last.exists() and load_checkpoint(last).train_state["epoch"] == N_EPOCH - 1


def check_checkpoints(run: Path, note: str) -> None:
    for path in sorted((run / "checkpoints").glob("*.safetensors")) if (run / "checkpoints").exists() else []:
        ckpt = load_checkpoint(path)  # raises UserError on a truncated file
        assert all(torch.isfinite(v).all() for v in ckpt.model_state.values()), f"{path} {note}"


def start(data: Path, run: Path, log: Path) -> tuple[subprocess.Popen, float]:
    with open(log, "ab") as f:
        f.write(f"\n$ {' '.join(command(data, run))}\n".encode())
        proc = subprocess.Popen(command(data, run), cwd=ROOT, env=ENV, stdout=f, stderr=subprocess.STDOUT)
    return proc, time.monotonic()


def chain(data: Path, run: Path, seed: int, kills: int) -> dict[str, int]:
    """Start, kill after a random moment, repeat ``kills`` times, then let it finish. Returns counts."""
    rng = random.Random(seed)
    log = run.parent / f"{run.name}.log"
    config = run / "config.json"
    counts = {"kills": 0, "starts": 0, "fresh_starts": 0, "kills_before_training": 0}
    epoch_s = EPOCH_S  # updated from the epochs this chain sees
    while not finished(run):
        assert counts["starts"] < MAX_STARTS, log.read_text()
        counts["fresh_starts"] += not (run / "checkpoints" / "last.safetensors").exists()
        stamp = config.stat().st_mtime_ns if config.exists() else None
        proc, t0 = start(data, run, log)
        counts["starts"] += 1
        if counts["kills"] < kills:
            if counts["starts"] == 1 or rng.random() < 0.2:  # start-up: imports, data decoding, cache writing
                deadline = t0 + rng.uniform(0.1, 3.0)
            # once training started (config.json is rewritten just before the first epoch): epochs, saves
            else:
                while proc.poll() is None and (not config.exists() or config.stat().st_mtime_ns == stamp):
                    time.sleep(0.005)
                # a random epoch still to run, then a random moment within it (training, validation, saves);
                # paced by the epochs seen, not by a fixed duration: machines differ several times in speed
                done = epochs_done(run)
                # the last epoch only when nothing else is left
                target = rng.randint(done, max(done, N_EPOCH - 2))
                epoch_s = wait_for_epoch(proc, run, target, epoch_s)
                deadline = time.monotonic() + rng.uniform(0.0, epoch_s)
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            if proc.poll() is None:
                trained = config.exists() and config.stat().st_mtime_ns != stamp
                proc.send_signal(signal.SIGKILL)
                counts["kills"] += 1
                counts["kills_before_training"] += not trained
        code = proc.wait(timeout=120)
        assert code in (0, -signal.SIGKILL), f"exit code {code}:\n{log.read_text()}"
        check_checkpoints(run, f"after start {counts['starts']} of {run}:\n{log.read_text()}")
    return counts


def rows_written(run: Path) -> int:
    """Epoch rows in metrics.csv (written after each epoch's validation, before its checkpoints)."""
    try:
        return max(len((run / "metrics.csv").read_text().splitlines()) - 1, 0)
    except FileNotFoundError:
        return 0


def wait_for_epoch(proc: subprocess.Popen, run: Path, epoch: int, epoch_s: float) -> float:
    """Wait until the run is in ``epoch`` (0-based: its earlier epochs have their metrics rows) or ends.

    Returns the seconds per epoch measured from the rows that appeared meanwhile (else ``epoch_s``)."""
    rows, changes = rows_written(run), []  # (time, rows) at each new row
    while proc.poll() is None and rows < epoch:
        time.sleep(0.002)
        now_rows = rows_written(run)
        if now_rows > rows:
            changes.append((time.monotonic(), now_rows))
            rows = now_rows
    if len(changes) >= 2:
        (t0, r0), (t1, r1) = changes[0], changes[-1]
        epoch_s = (t1 - t0) / (r1 - r0)
    return epoch_s


def metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def test_sigkill_at_random_moments_then_resume_always_finishes_with_the_uninterrupted_result(tmp_path):
    data = make_lab_dataset(tmp_path / "data", n_train=24, n_val=10, n_test=1, test_len=4)
    runs = [tmp_path / f"chain{i}" for i in range(CHAINS)]
    reference = tmp_path / "reference"
    with ThreadPoolExecutor(CHAINS + 1) as pool:
        futures = [pool.submit(chain, data, run, seed=1234 + i, kills=KILLS_PER_CHAIN)
                   for i, run in enumerate(runs)]
        ref = pool.submit(chain, data, reference, seed=0, kills=0)
        counts = [f.result() for f in futures]
        assert ref.result()["starts"] == 1
    total_kills = sum(c["kills"] for c in counts)
    # a kill planned after the run's end finds it finished: most must hit a running process
    assert total_kills >= CHAINS * KILLS_PER_CHAIN - 2, counts
    # killed before the first checkpoint: fresh start
    assert all(c["fresh_starts"] >= 2 for c in counts), counts

    expected_weights = load_checkpoint(reference / "checkpoints" / "last.safetensors").model_state
    expected_rows = metrics(reference)
    assert [int(r["epoch"]) for r in expected_rows] == list(range(N_EPOCH))
    for run, c in zip(runs, counts, strict=True):
        names = {p.name for p in (run / "checkpoints").glob("*.safetensors")}
        assert names == {"last.safetensors", "best.safetensors",
                         *(f"epoch_{e}.safetensors" for e in range(1, N_EPOCH + 1))}, (names, c)
        assert not list((run / "checkpoints").glob(".*.tmp")), c  # saves cut by a kill are cleaned on resume
        rows = metrics(run)
        assert [int(r["epoch"]) for r in rows] == list(range(N_EPOCH)), (rows, c)  # one row per epoch
        assert rows == expected_rows, c
        last = load_checkpoint(run / "checkpoints" / "last.safetensors").model_state
        assert last.keys() == expected_weights.keys()
        for name, value in expected_weights.items():
            assert torch.equal(last[name], value), f"{name} differs after {c} in {run}"
    print(f"{total_kills} SIGKILLs, all resumed and finished identically: {counts}")
