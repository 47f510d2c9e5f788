"""The run folder: what training writes and the report, ``compare`` and ``demo`` read.

    RUN/config.json                  the run's config (RunConfig.to_dict), written when training starts
    RUN/metrics.csv                  one row per finished epoch, METRIC_COLUMNS
    RUN/val_psnr_per_frame.csv       per-frame validation PSNR (whole frame, pose region, person box) at the
    best epoch
    RUN/val_best_frames.npz          the best epoch's validation video, uint8: predicted and true frames and
    pose labels (what the report draws its validation GIF and crops from)
    RUN/checkpoints/                 last.safetensors, best.safetensors, epoch_N.safetensors
    RUN/tb/                          TensorBoard
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posevae.errors import UserError
from posevae.files import atomic_write, atomic_write_text, ensure_writable_folder, remove_temp_files

METRIC_COLUMNS = [
    "epoch", "loss", "mse", "kl", "beta", "tfr", "teacher_forcing", "lr",
    "val_psnr", "val_psnr_posterior", "val_mse", "val_kl", "val_loss", "skipped_steps", "seconds",
    "val_psnr_pose", "val_psnr_box",  # added later: at the end, so older files keep their column positions
]


VAL_FRAMES = "val_best_frames.npz"  # the best epoch's validation frames (ValFrames), beside the per-frame CSV


class RunFolder:
    """The files of one run: config.json, metrics.csv, val_psnr_per_frame.csv, val_best_frames.npz,
    checkpoints/, tb/."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.checkpoints = self.root / "checkpoints"
        self.config = self.root / "config.json"
        self.metrics = self.root / "metrics.csv"
        self.per_frame = self.root / "val_psnr_per_frame.csv"
        self.val_frames = self.root / VAL_FRAMES
        self.tensorboard = self.root / "tb"
        self.last = self.checkpoints / "last.safetensors"
        self.best = self.checkpoints / "best.safetensors"

    def prepare(self) -> None:
        """Create the folder and checkpoints/, check that they can be written, and remove the temporary files
        of a save that was killed mid-write."""
        ensure_writable_folder(self.checkpoints, f"Cannot write into the run folder {self.root} ({{error}}): "
                                                 "choose a writable --save_root.")
        remove_temp_files(self.checkpoints)

    def read_metrics(self) -> list[dict[str, str]]:
        if not self.metrics.exists():
            return []
        with open(self.metrics, newline="") as f:
            return list(csv.DictReader(f))

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.metrics, buf.getvalue())


def per_frame_csv(per_frame: dict[str, list[float]]) -> str:
    """val_psnr_per_frame.csv: frame (1..N-1), then one column per metric ("nan" for an empty label)."""
    columns = list(per_frame)
    rows = zip(*(per_frame[c] for c in columns), strict=True)
    return ",".join(["frame", *columns]) + "\n" + "".join(
        f"{i + 1}," + ",".join(f"{v:.6f}" for v in values) + "\n" for i, values in enumerate(rows))


@dataclass(frozen=True)
class ValFrames:
    """The validation video at the best epoch, as validation rolled it out (z from the prior): uint8 arrays
    (T, 3, H, W) of the predicted frames (frame 0 is the given true frame), the true frames and their pose
    labels; ``epoch`` is the 0-based epoch whose rollout this is."""

    epoch: int
    pred: np.ndarray
    true: np.ndarray
    labels: np.ndarray


def write_val_frames(path: Path, frames: ValFrames) -> None:
    """Write ``frames`` to ``path`` (RUN/val_best_frames.npz) atomically, as a compressed .npz (the demo's
    630 frames at 32x64: about 2.5 MB)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez_* would append .npz to a path
            np.savez_compressed(f, epoch=np.int64(frames.epoch), pred=frames.pred, true=frames.true,
                                labels=frames.labels)

    atomic_write(path, write)


def read_val_frames(path: Path) -> ValFrames | None:
    """RUN/val_best_frames.npz as written by :func:`write_val_frames`; None when there is no such file (a run
    trained before posevae wrote it). Raises UserError when the file cannot be read."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            frames = ValFrames(int(npz["epoch"]), npz["pred"], npz["true"], npz["labels"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise UserError(f"Cannot read {path} ({err}): train the run again to rewrite it.") from None
    shapes = {frames.pred.shape, frames.true.shape, frames.labels.shape}
    if len(shapes) != 1 or frames.pred.ndim != 4 or frames.pred.shape[1] != 3 or any(
            a.dtype != np.uint8 for a in (frames.pred, frames.true, frames.labels)):
        raise UserError(f"{path} does not hold uint8 frames (T, 3, H, W) of equal shapes: train the run "
                        "again to rewrite it.")
    return frames
