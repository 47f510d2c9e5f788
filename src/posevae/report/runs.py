"""What the report reads from a run folder: config.json, metrics.csv, val_psnr_per_frame.csv,
val_best_frames.npz, test/summary.json, and the one style (colour, line, marker) each run keeps in every
figure.

Fixed styles for the KL annealing strategies None / Monotonic / Cyclical / FuCyclical, a palette for other
runs.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posevae.errors import UserError
from posevae.run_folder import METRIC_COLUMNS, VAL_FRAMES, ValFrames, read_val_frames


@dataclass(frozen=True)
class Style:
    colour: str
    linestyle: str
    marker: str


# Okabe & Ito's colour-blind-safe palette; one fixed style per KL annealing strategy.
STRATEGY_STYLES: dict[str, Style] = {
    "None": Style("#0072B2", "-", "o"),  # blue
    "Monotonic": Style("#E69F00", "--", "s"),  # orange
    "Cyclical": Style("#009E73", "-.", "^"),  # green
    "FuCyclical": Style("#CC79A7", ":", "D"),  # purple
}


OTHER_STYLES: tuple[Style, ...] = (
    Style("#D55E00", "-", "v"),  # vermilion
    Style("#56B4E9", "--", "P"),  # sky blue
    Style("#000000", "-.", "X"),
    Style("#8C564B", ":", "h"),  # brown
    Style("#999999", "-", "*"),  # grey
    Style("#BCBD22", "--", "p"),  # olive
)


@dataclass
class RunData:
    """What the report reads from one run folder."""

    name: str
    path: Path
    config: dict[str, Any]  # config.json as written by train (nested dict)
    metrics: dict[str, np.ndarray]  # metrics.csv column -> float values, one per finished epoch ('' -> NaN)
    per_frame: np.ndarray | None  # val PSNR of frames 1..N-1 of the val video at the best epoch (dB)
    test: dict[str, Any] | None = None  # RUN/test/summary.json when the run was tested with ground truth
    style: Style = field(default=STRATEGY_STYLES["None"])
    per_frame_pose: np.ndarray | None = None  # the same frames' pose-region PSNR (dB; NaN: empty label)
    val_frames: ValFrames | None = None  # val_best_frames.npz: the val video's frames at the best epoch
    val_frames_note: str = ""  # why val_frames is None, in one line

    @property
    def strategy(self) -> str:
        return str(self.config.get("train", {}).get("kl_anneal_type", "?"))

    @property
    def num_epoch(self) -> int | None:
        return self.config.get("train", {}).get("num_epoch")

    @property
    def epochs(self) -> np.ndarray:
        """1-based epoch numbers of the finished epochs (metrics.csv's 0-based epoch + 1)."""
        return self.metrics["epoch"] + 1

    @property
    def test_dir(self) -> Path:
        return self.path / "test"


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def read_csv_columns(path: Path) -> dict[str, np.ndarray]:
    """A CSV of numbers -> {column: float array}; empty or unparsable cells become NaN."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {key: np.array([_float(r.get(key)) for r in rows]) for key in rows[0]}


def load_run(path: str | Path, name: str | None = None) -> RunData:
    """Read one run folder (config.json, metrics.csv, val_psnr_per_frame.csv, val_best_frames.npz,
    test/summary.json)."""
    path = Path(path)
    metrics_path = path / "metrics.csv"
    if not metrics_path.is_file():
        raise UserError(f"{path} is not a run folder: {metrics_path} does not exist. Pass folders written by "
                        "`posevae train` (its --save_root) or `posevae compare` (OUT/runs/<name>).")
    metrics = read_csv_columns(metrics_path)
    if not metrics or "epoch" not in metrics:
        raise UserError(f"{metrics_path} holds no finished epoch yet: train the run for at least one epoch.")
    for key in METRIC_COLUMNS:  # a column an older posevae did not log: NaN, drawn as nothing
        metrics.setdefault(key, np.full(len(metrics["epoch"]), math.nan))
    config: dict[str, Any] = {}
    if (path / "config.json").is_file():
        config = json.loads((path / "config.json").read_text())
    per_frame = per_frame_pose = None
    if (path / "val_psnr_per_frame.csv").is_file():
        curves = read_csv_columns(path / "val_psnr_per_frame.csv")  # psnr_pose: since the person metrics
        per_frame, per_frame_pose = curves.get("psnr"), curves.get("psnr_pose")
    test = None
    summary = path / "test" / "summary.json"
    if summary.is_file():
        test = json.loads(summary.read_text())
        if test.get("mean_psnr") is None:  # tested without ground truth: nothing to score
            test = None
    val_frames, val_frames_note = _val_frames(path)
    return RunData(name or path.name, path, config, metrics, per_frame, test, per_frame_pose=per_frame_pose,
                   val_frames=val_frames, val_frames_note=val_frames_note)


def _val_frames(path: Path) -> tuple[ValFrames | None, str]:
    """RUN/val_best_frames.npz, or None and why not (a run trained before training wrote it, a bad file)."""
    try:
        frames = read_val_frames(path / VAL_FRAMES)
    except UserError as err:
        return None, str(err)
    if frames is None:
        return None, (f"{path / VAL_FRAMES} does not exist (training writes it at each new best epoch; a run "
                      "trained by an older posevae lacks it): train the run again with this version to draw "
                      "its validation GIF and crops.")
    return frames, ""


def run_names(paths: Sequence[Path], names: Sequence[str] | None = None) -> list[str]:
    """Legend names: the given ones, else the folder names (with their parent where two are equal)."""
    if names is not None:
        if len(names) != len(paths):
            raise UserError(f"--names gives {len(names)} names for {len(paths)} runs: give one name per run.")
        if len(set(names)) != len(names):
            raise UserError(f"--names must be distinct, got {list(names)}.")
        return list(names)
    out = [p.resolve().name for p in paths]
    if len(set(out)) != len(out):
        out = [f"{p.resolve().parent.name}/{p.resolve().name}" for p in paths]
    if len(set(out)) != len(out):
        out = [f"{n} ({i + 1})" for i, n in enumerate(out)]
    return out


def assign_styles(runs: Sequence[RunData]) -> None:
    """One style per run: a strategy's fixed style goes to the run named after it, else to the first run
    of that strategy; every other run takes the next palette style."""
    taken: set[str] = set()
    for run in runs:
        if run.name in STRATEGY_STYLES:
            run.style = STRATEGY_STYLES[run.name]
            taken.add(run.name)
    palette = iter(OTHER_STYLES * (len(runs) // len(OTHER_STYLES) + 1))
    for run in runs:
        if run.name in STRATEGY_STYLES:
            continue
        if run.strategy in STRATEGY_STYLES and run.strategy not in taken:
            run.style = STRATEGY_STYLES[run.strategy]
            taken.add(run.strategy)
        else:
            run.style = next(palette)


def slug(name: str) -> str:
    """A file-name-safe form of a run name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "run"


def _best_epoch_index(run: RunData) -> int | None:
    """Index (0-based row) of the run's best epoch: the highest whole-frame val_psnr, as training chooses."""
    val = run.metrics["val_psnr"]
    return int(np.nanargmax(val)) if np.isfinite(val).any() else None
