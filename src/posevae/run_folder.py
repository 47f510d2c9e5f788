"""The run folder: what training writes and the report, ``compare`` and ``demo`` read.

    RUN/config.json                  the run's config (RunConfig.to_dict), written when training starts
    RUN/metrics.csv                  one row per finished epoch, METRIC_COLUMNS
    RUN/val_psnr_per_frame.csv       per-frame validation PSNR (whole frame, pose region, person box) at the
    best epoch
    RUN/checkpoints/                 last.safetensors, best.safetensors, epoch_N.safetensors
    RUN/tb/                          TensorBoard
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from posevae.files import atomic_write_text, ensure_writable_folder

METRIC_COLUMNS = [
    "epoch", "loss", "mse", "kl", "beta", "tfr", "teacher_forcing", "lr",
    "val_psnr", "val_psnr_posterior", "val_mse", "val_kl", "val_loss", "skipped_steps", "seconds",
    "val_psnr_pose", "val_psnr_box",  # added later: at the end, so older files keep their column positions
]


class RunFolder:
    """The files of one run: config.json, metrics.csv, val_psnr_per_frame.csv, checkpoints/, tb/."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.checkpoints = self.root / "checkpoints"
        self.config = self.root / "config.json"
        self.metrics = self.root / "metrics.csv"
        self.per_frame = self.root / "val_psnr_per_frame.csv"
        self.tensorboard = self.root / "tb"
        self.last = self.checkpoints / "last.safetensors"
        self.best = self.checkpoints / "best.safetensors"

    def prepare(self) -> None:
        """Create the folder and checkpoints/, check that they can be written, and remove the temporary files
        of a save that was killed mid-write."""
        ensure_writable_folder(self.checkpoints, f"Cannot write into the run folder {self.root} ({{error}}): "
                                                 "choose a writable --save_root.")
        for stale in self.checkpoints.glob(".*.tmp"):
            stale.unlink(missing_ok=True)

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
