"""Table 1 of the report: one row per run (best / last validation PSNR, person metrics, test scores, time),
as table.csv (full precision) and table.md; the HTML page shows the same cells.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posevae.files import atomic_write_text
from posevae.report.runs import (
    RunData,
    _best_epoch_index,
)

TABLE_COLUMNS = ["run", "kl_anneal_type", "epochs", "best_val_psnr", "best_epoch", "last_val_psnr",
                 "val_psnr_pose", "val_psnr_box", "test_psnr", "test_ssim", "test_baseline_psnr",
                 "test_psnr_pose", "test_psnr_box", "train_seconds"]


TABLE_NOTE = ("Val PSNR: the validation video generated from its first frame with z from the prior (as at "
              "test time), mean over its predicted frames. Epochs are 1-based. Test: mean over the test "
              "sequences with ground truth (posevae test). Pose / box PSNR: over the pixels of each frame's "
              "pose label (dilated by 1 px) / over its bounding box (padded by 2 px), frames with an empty "
              "label skipped; validation's at the best epoch (chosen by whole-frame PSNR). Training time: "
              "training and validation, summed over the epochs.")


def table_rows(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    """Table 1 and more, one row per run. best_epoch is 1-based; train_seconds sums metrics.csv's seconds
    (training and validation of every epoch); val_psnr_pose / val_psnr_box are those of the best epoch (None
    in a metrics.csv from before them); test_* are the means over the test sequences (``posevae test`` with
    ground truth), None without."""
    rows = []
    for run in runs:
        val = run.metrics["val_psnr"]
        best = _best_epoch_index(run)
        test = run.test or {}
        rows.append({
            "run": run.name,
            "kl_anneal_type": run.strategy,
            "epochs": len(run.epochs),
            "num_epoch": run.num_epoch,
            "best_val_psnr": float(val[best]) if best is not None else None,
            "best_epoch": int(run.epochs[best]) if best is not None else None,
            "last_val_psnr": float(val[-1]) if np.isfinite(val[-1]) else None,
            "val_psnr_pose": _finite_at(run.metrics["val_psnr_pose"], best),
            "val_psnr_box": _finite_at(run.metrics["val_psnr_box"], best),
            "test_psnr": test.get("mean_psnr"),
            "test_ssim": test.get("mean_ssim"),
            "test_baseline_psnr": test.get("mean_baseline_psnr"),
            "test_psnr_pose": test.get("mean_psnr_pose"),  # absent from an older summary.json: None
            "test_psnr_box": test.get("mean_psnr_box"),
            "train_seconds": float(np.nansum(run.metrics.get("seconds", np.array([math.nan])))),
        })
    return rows


def _finite_at(values: np.ndarray, index: int | None) -> float | None:
    return float(values[index]) if index is not None and np.isfinite(values[index]) else None


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def table_display(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the human-readable table (markdown and HTML)."""
    header = ["run", "KL annealing", "epochs", "best val PSNR (dB)", "best epoch", "last val PSNR (dB)",
              "val pose / box PSNR (dB)", "test PSNR (dB)", "test SSIM", "test pose / box PSNR (dB)",
              "training time"]

    def num(v: Any, fmt: str) -> str:
        return "–" if v is None else format(v, fmt)

    def pair(a: Any, b: Any) -> str:
        return f"{num(a, '.2f')} / {num(b, '.2f')}"

    cells = []
    for r in rows:
        epochs = str(r["epochs"])
        if r["num_epoch"] and r["epochs"] < r["num_epoch"]:
            epochs += f" of {r['num_epoch']}"
        cells.append([r["run"], r["kl_anneal_type"], epochs, num(r["best_val_psnr"], ".2f"),
                      num(r["best_epoch"], "d"), num(r["last_val_psnr"], ".2f"),
                      pair(r["val_psnr_pose"], r["val_psnr_box"]), num(r["test_psnr"], ".2f"),
                      num(r["test_ssim"], ".4f"), pair(r["test_psnr_pose"], r["test_psnr_box"]),
                      format_duration(r["train_seconds"])])
    return header, cells


def write_tables(rows: Sequence[dict[str, Any]], out: Path) -> tuple[Path, Path]:
    """out/table.csv (full precision, empty cell = not measured) and out/table.md."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TABLE_COLUMNS)
    for r in rows:
        w.writerow(["" if r[c] is None else (f"{r[c]:.6g}" if isinstance(r[c], float) else r[c])
                    for c in TABLE_COLUMNS])
    atomic_write_text(out / "table.csv", buf.getvalue())

    header, cells = table_display(rows)
    md = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    md += ["", TABLE_NOTE]
    atomic_write_text(out / "table.md", "\n".join(md) + "\n")
    return out / "table.csv", out / "table.md"
