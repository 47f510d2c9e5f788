"""Bad input through the real command line: one clear message, exit code 2, no traceback, nothing written.

Each case of the table prepares a fresh copy of a tiny lab-layout dataset (and, where needed, a checkpoint
or a run folder), runs ``posevae train`` or ``posevae test`` in-process, and checks the message and that the
listing of the whole test folder is unchanged (the decoded-frame cache DR/.posevae_cache excepted).
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from posevae.cli.main import main
from posevae.config import DataConfig, RunConfig, TrainConfig
from posevae.model.checkpoint import Checkpoint, save_checkpoint
from posevae.model.vae import PoseVAE
from tests.conftest import tiny_model_config
from tests.synthetic import make_lab_dataset

TINY = ["--preset", "tiny", "--frame_H", "16", "--frame_W", "32", "--train_vi_len", "6", "--val_vi_len", "10",
        "--batch_size", "2", "--num_epoch", "3", "--kl_anneal_cycle", "1", "--precision", "fp32", "--quiet"]
TEST_LEN = 5


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return make_lab_dataset(tmp_path_factory.mktemp("pristine") / "data", n_train=24, n_val=10, n_test=2,
                            test_len=TEST_LEN)


@dataclass
class Ctx:
    tmp: Path
    data: Path

    @property
    def run(self) -> Path:  # the --save_root of a new run: must not appear
        return self.tmp / "run"

    @property
    def out(self) -> Path:  # the --out of `posevae test`: must not appear
        return self.tmp / "out"

    def train(self, *extra: str) -> list[str]:
        return ["train", "--DR", str(self.data), "--save_root", str(self.run), *TINY, *extra]

    def ckpt(self, name: str = "model.safetensors", **model) -> Path:
        cfg = RunConfig(model=tiny_model_config(**model), data=DataConfig(DR=str(self.data), train_vi_len=6,
                                                                          val_vi_len=10),
                        train=TrainConfig(batch_size=2, num_epoch=3, kl_anneal_cycle=1, precision="fp32"))
        path = self.tmp / "ckpts" / name
        save_checkpoint(path, Checkpoint(cfg, PoseVAE(cfg.model).state_dict(), {"epoch": 0}))
        return path

    def test(self, ckpt: Path | None = None, *extra: str) -> list[str]:
        ckpt = ckpt if ckpt is not None else self.ckpt()
        return ["test", "--ckpt", str(ckpt), "--DR", str(self.data), "--out", str(self.out), "--quiet",
                *extra]

    def stored_run(self, epoch: int = 0, **model) -> Path:
        """A run folder as `posevae train` leaves it after ``epoch`` (config.json + checkpoints/last)."""
        run = self.tmp / "stored_run"
        argv_cfg = RunConfig(model=tiny_model_config(**model),
                             data=DataConfig(DR=str(self.data), train_vi_len=6, val_vi_len=10),
                             train=TrainConfig(save_root=str(run), batch_size=2, num_epoch=3,
                                               kl_anneal_cycle=1, precision="fp32"))
        model_ = PoseVAE(argv_cfg.model)
        opt = torch.optim.Adam(model_.parameters())
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3)
        save_checkpoint(run / "checkpoints" / "last.safetensors",
                        Checkpoint(argv_cfg, model_.state_dict(), {"epoch": epoch, "best_psnr": 10.0,
                                                                   "scheduler": sched.state_dict()},
                                   opt.state_dict()))
        (run / "config.json").write_text(json.dumps(argv_cfg.to_dict()))
        return run


def png(path: Path, H: int = 16, W: int = 32, mode: str = "RGB") -> None:
    arr = np.random.default_rng(0).integers(0, 256, (H, W, 4 if mode == "RGBA" else 3), dtype=np.uint8)
    img = Image.fromarray(arr, mode="RGBA" if mode == "RGBA" else "RGB")
    (img.convert(mode) if mode not in ("RGB", "RGBA") else img).save(path)


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def empty_dir(path: Path) -> None:
    shutil.rmtree(path)
    path.mkdir()


def blocker(c: Ctx) -> Path:
    """A plain file where a folder should be: no folder can be made under it (works as root too)."""
    f = c.tmp / "blocker"
    f.write_text("not a folder")
    return f


def plain_safetensors(c: Ctx) -> Path:
    path = c.tmp / "ckpts" / "plain.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"weight": torch.zeros(3)}, str(path))
    return path


def random_bytes(c: Ctx) -> Path:
    path = c.tmp / "ckpts" / "random.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def mismatched_weights(c: Ctx) -> Path:
    """Config of one model, weights of another (F_dim 16 vs 24)."""
    good = c.ckpt()
    from posevae.model.checkpoint import load_checkpoint

    ck = load_checkpoint(good)
    other = PoseVAE(tiny_model_config(F_dim=24)).state_dict()
    path = c.tmp / "ckpts" / "mixed.safetensors"
    save_checkpoint(path, Checkpoint(ck.config, other, {"epoch": 0}))
    return path


def resume(run: Path, *extra: str) -> list[str]:
    return ["train", "--resume", str(run), "--quiet", *extra]


D = "data"
# (id, how to make the argv (and break the data), key words expected in the message)
CASES: list[tuple[str, Callable[[Ctx], list[str]], list[str]]] = [
    # ---- dataset folders
    ("train-dataset-root-missing",
     lambda c: ["train", "--DR", str(c.tmp / "nowhere"), "--save_root", str(c.run), *TINY],
     ["does not exist", "nowhere"]),
    ("train-split-folder-missing",
     lambda c: (shutil.rmtree(c.data / "val" / "val_label"), c.train())[1],
     ["Missing folder", "val_label", "LAB4_Dataset"]),
    ("train-split-empty",
     lambda c: (empty_dir(c.data / "train" / "train_img"), empty_dir(c.data / "train" / "train_label"),
                c.train())[2],
     ["train split is empty", "train_img"]),
    ("test-split-empty",
     lambda c: (empty_dir(c.data / "test" / "test_img"), empty_dir(c.data / "test" / "test_label"),
                c.test())[2],
     ["test split is empty", "test_img"]),
    ("test-sequence-folder-empty",
     lambda c: (empty_dir(c.data / "test" / "test_label" / "1"), c.test())[1],
     ["Test sequence 1 has no poses", "test_label"]),
    # ---- frames without labels and the reverse
    ("train-frame-without-label",
     lambda c: ((c.data / "train" / "train_label" / "13.png").unlink(), c.train())[1],
     ["have no label", "13.png", "train_label"]),
    ("train-label-without-frame",
     lambda c: ((c.data / "val" / "val_img" / "7.png").unlink(), c.train())[1],
     ["have no frame", "7.png", "val_img"]),
    ("test-poses-without-first-frame",
     lambda c: (shutil.rmtree(c.data / "test" / "test_img" / "1"), c.test())[1],
     ["have poses in", "no folder in", "test_img"]),
    ("test-first-frame-without-poses",
     lambda c: (shutil.rmtree(c.data / "test" / "test_label" / "1"),
                shutil.rmtree(c.data / "test" / "test_gt"),
                c.test())[2],
     ["first frame", "but no poses", "test_label"]),
    ("test-ground-truth-count-differs",
     lambda c: ((c.data / "test" / "test_gt" / "0" / "3.png").unlink(), c.test())[1],
     ["Test sequence 0", "4 ground-truth frames", "5 poses"]),
    # ---- unreadable images
    ("train-truncated-png",
     lambda c: (truncate(c.data / "train" / "train_img" / "5.png"), c.train())[1],
     ["Cannot read image", "5.png", "corrupt"]),
    ("train-not-a-png",
     lambda c: ((c.data / "val" / "val_label" / "2.png").write_bytes(b"GIF89a not really"), c.train())[1],
     ["Cannot read image", "val_label", "2.png"]),
    ("test-truncated-png",
     lambda c: (truncate(c.data / "test" / "test_label" / "1" / "2.png", 0.3), c.test())[1],
     ["Cannot read image", "2.png"]),
    ("train-png-without-number",
     lambda c: (shutil.copy(c.data / "train" / "train_img" / "0.png",
                            c.data / "train" / "train_img" / "x.png"),
                c.train())[1],
     ["no number", "x.png"]),
    # ---- sizes
    ("train-mixed-image-sizes",
     lambda c: (png(c.data / "train" / "train_img" / "9.png", H=20, W=40), c.train())[1],
     ["different sizes", "9.png", "40x20"]),
    ("test-mixed-image-sizes",
     lambda c: (png(c.data / "test" / "test_label" / "0" / "4.png", H=8, W=16), c.test())[1],
     ["different sizes", "4.png"]),
    ("train-frame-size-not-divisible", lambda c: c.train("--frame_H", "15"),
     ["not divisible", "downsample", "15x32"]),
    ("train-frame-size-zero", lambda c: c.train("--frame_W", "0"), ["--frame_W must be a positive integer"]),
    ("train-downsample-unsupported", lambda c: c.train("--downsample", "3"),
     ["--downsample must be 1, 2, 4 or 8"]),
    # ---- lengths
    ("train-val-video-shorter-than-val-vi-len", lambda c: c.train("--val_vi_len", "50"),
     ["val video", "has 10 frames", "--val_vi_len asks for 50"]),
    ("train-clip-longer-than-data", lambda c: c.train("--train_vi_len", "30"),
     ["too few frames", "--train_vi_len", "train_img"]),
    ("test-num-frames-more-than-poses", lambda c: c.test(None, "--num_frames", "9"),
     ["Test sequence 0 has 5 poses", "--num_frames asks for 9", "test_label/0"]),
    ("test-num-frames-zero", lambda c: c.test(None, "--num_frames", "0"),
     ["--num_frames must be an integer >= 2, got 0", "first frame included", "one frame predicts nothing"]),
    ("test-num-frames-one", lambda c: c.test(None, "--num_frames", "1"),
     ["--num_frames must be an integer >= 2, got 1", "pass --num_frames 2 or more"]),
    # ---- impossible option values
    ("train-lr-negative", lambda c: c.train("--lr", "-0.001"), ["--lr must be positive"]),
    ("train-lr-zero", lambda c: c.train("--lr", "0"), ["--lr must be positive"]),
    ("train-kl-ratio-zero", lambda c: c.train("--kl_anneal_ratio", "0"),
     ["--kl_anneal_ratio must be in (0, 1]"]),
    ("train-kl-ratio-above-1", lambda c: c.train("--kl_anneal_ratio", "1.5"),
     ["--kl_anneal_ratio must be in (0, 1]"]),
    ("train-partial-zero", lambda c: c.train("--partial", "0"), ["--partial must be in (0, 1]"]),
    ("train-partial-above-1", lambda c: c.train("--partial", "1.01"), ["--partial must be in (0, 1]"]),
    ("train-tfr-above-1", lambda c: c.train("--tfr", "1.5"), ["--tfr must be in [0, 1]"]),
    ("train-tfr-negative", lambda c: c.train("--tfr", "-0.1"), ["--tfr must be in [0, 1]"]),
    ("train-tfr-d-step-above-1", lambda c: c.train("--tfr_d_step", "2"), ["--tfr_d_step must be in [0, 1]"]),
    ("train-zero-epochs", lambda c: c.train("--num_epoch", "0"), ["--num_epoch must be >= 1"]),
    ("train-zero-batch", lambda c: c.train("--batch_size", "0"), ["--batch_size must be >= 1"]),
    ("train-batch-larger-than-data", lambda c: c.train("--batch_size", "100"),
     ["--batch_size 100 is larger than the 4 training clips"]),
    ("train-noise-scale-negative", lambda c: c.train("--noise_scale", "-1"), ["--noise_scale must be >= 0"]),
    ("test-noise-scale-negative", lambda c: c.test(None, "--noise_scale", "-1"), ["--noise_scale must be"]),
    ("train-no-dataset", lambda c: ["train", "--save_root", str(c.run), *TINY], ["needs --DR"]),
    # ---- checkpoints
    ("train-resume-other-model-config", lambda c: resume(c.stored_run(), "--F_dim", "32"),
     ["another config", "model.F_dim: 16 != 32", "stored_run"]),
    ("train-resume-truncated-checkpoint",
     lambda c: (truncate(c.stored_run() / "checkpoints" / "last.safetensors"),
                resume(c.tmp / "stored_run"))[1],
     ["cannot be read", "last.safetensors", "truncated"]),
    ("train-resume-not-a-posevae-checkpoint",
     lambda c: (shutil.copy(plain_safetensors(c), c.stored_run() / "checkpoints" / "last.safetensors"),
                resume(c.tmp / "stored_run"))[1],
     ["not a posevae checkpoint", "last.safetensors"]),
    ("train-resume-finished-run", lambda c: resume(c.stored_run(epoch=2)),
     ["already finished", "stored_run"]),
    ("train-resume-nothing-there", lambda c: resume(c.tmp / "no_run"), ["Nothing to resume", "no_run"]),
    ("train-over-existing-run",
     lambda c: ["train", "--DR", str(c.data), "--save_root", str(c.stored_run()), *TINY],
     ["already holds a run", "--resume"]),
    ("test-checkpoint-missing", lambda c: c.test(c.tmp / "ckpts" / "gone.safetensors"),
     ["does not exist", "gone.safetensors"]),
    ("test-checkpoint-truncated", lambda c: c.test(truncate(c.ckpt("cut.safetensors"), 0.6)),
     ["cannot be read", "cut.safetensors", "truncated"]),
    ("test-checkpoint-random-bytes", lambda c: c.test(random_bytes(c)),
     ["cannot be read", "random.safetensors"]),
    ("test-checkpoint-not-posevae", lambda c: c.test(plain_safetensors(c)),
     ["not a posevae checkpoint", "plain.safetensors"]),
    ("test-checkpoint-weights-do-not-fit-its-config", lambda c: c.test(mismatched_weights(c)),
     ["does not fit the model", "mixed.safetensors"]),
    # ---- output folders that cannot be written
    ("train-save-root-not-writable",
     lambda c: ["train", "--DR", str(c.data), "--save_root", str(blocker(c) / "run"), *TINY],
     ["Cannot write into the run folder", "blocker"]),
    ("test-out-not-writable",
     lambda c: ["test", "--ckpt", str(c.ckpt()), "--DR", str(c.data), "--out", str(blocker(c) / "out"),
                "--quiet"],
     ["Cannot write to the output folder", "blocker"]),
]


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every folder, and every file with its size and mtime, under root (the decoded-frame cache excepted)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if ".posevae_cache" in rel.parts:
            continue
        st = p.stat()
        out[rel.as_posix()] = (st.st_size, st.st_mtime_ns) if p.is_file() else (-1, -1)
    return out


@pytest.mark.parametrize("make_argv, expected", [pytest.param(m, e, id=i) for i, m, e in CASES])
def test_bad_input_is_one_clear_error_and_writes_nothing(make_argv, expected, pristine, tmp_path, capsys):
    c = Ctx(tmp_path, tmp_path / D)
    shutil.copytree(pristine, c.data, ignore=shutil.ignore_patterns(".posevae_cache"))
    argv = make_argv(c)
    before = listing(tmp_path)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "no ground truth for sequence 1": not what is tested here
        code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("posevae: error:"), err
    assert "Traceback" not in err
    assert err.count("\n") == 1, err  # one message, one line
    for word in expected:
        assert word in err, f"{word!r} not in {err!r}"
    assert listing(tmp_path) == before  # nothing written, nothing changed (the data cache excepted)
    assert not c.run.exists() and not c.out.exists()


def test_grayscale_and_rgba_images_are_converted_with_one_warning(pristine, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(pristine, data, ignore=shutil.ignore_patterns(".posevae_cache"))
    png(data / "train" / "train_img" / "3.png", mode="L")
    png(data / "train" / "train_label" / "8.png", mode="RGBA")
    png(data / "test" / "test_label" / "0" / "2.png", mode="LA")
    run, out = tmp_path / "run", tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", "--DR", str(data), "--save_root", str(run), *TINY, "--num_epoch", "1",
                     "--kl_anneal_type", "Monotonic"]) == 0, capsys.readouterr().err
        assert main(["test", "--ckpt", str(run), "--DR", str(data), "--out", str(out), "--quiet"]) == 0
    converted = [str(w.message) for w in caught if "converted to RGB" in str(w.message)]
    assert len(converted) == 2, converted  # one for the training split, one for the test split
    assert converted[0].startswith("2 of 48 images in") and "train_img" in converted[0]
    assert converted[1].startswith("1 of ") and "test" in converted[1]
    assert (out / "submission.csv").is_file()
