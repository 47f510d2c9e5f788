"""Figures and tables of the analysis section, drawn from run folders (``posevae report``).

What the seed report shows, from the user's own runs (each a folder written by ``posevae train``)::

    figures/fig1_beta            KL weight beta per epoch                  metrics.csv  beta
    figures/fig2_val_psnr        validation PSNR per epoch (dB)            metrics.csv  val_psnr
    figures/fig3_val_kl          validation KL per epoch                   metrics.csv  val_kl
    figures/fig4_val_loss        total validation loss MSE + beta * KL     metrics.csv  val_loss
    figures/fig5_val_mse         validation reconstruction MSE             metrics.csv  val_mse
    figures/fig6_tfr             teacher-forcing ratio per epoch           metrics.csv  tfr, teacher_forcing
    figures/fig7_per_frame_psnr  per-frame PSNR over the validation video, val_psnr_per_frame.csv
                                 runs overlaid (best epoch of each run)
    figures/fig8_val_psnr_pose   validation pose-region PSNR per epoch      metrics.csv  val_psnr_pose
    figures/fig9_per_frame_psnr_pose  per-frame pose-region PSNR over the    val_psnr_per_frame.csv
                                 validation video (best epoch of each run)   psnr_pose
    table.md, table.csv          best / last val PSNR, epoch of best, pose-region and person-box PSNR
                                 (validation at the best epoch, test), test PSNR / SSIM, training time
    index.html                   the table, the figures, and per run a GIF of predicted | true frames
                                 with its per-frame PSNR curve (whole frame and pose region) under it
                                 (:mod:`posevae.report.html`)

The pose-region PSNR looks only at the pixels of each frame's pose label (dilated by 1 px), the person-box
PSNR at the padded bounding box of the label (:mod:`posevae.metrics`): whole-frame PSNR is dominated by
the background, these show whether the dancer keeps its arms and head.

Every figure is written as PNG and SVG. Epochs are 1-based everywhere in the report (epoch 1 is the
first epoch trained; metrics.csv's ``epoch`` column is 0-based, so report epoch = that column + 1, as in
the progress lines and ``epoch_N`` checkpoint names). Each run keeps one colour, line style and marker in
every figure: fixed ones for the KL annealing strategies None / Monotonic / Cyclical / FuCyclical, a
palette for other runs.

Drawn with matplotlib's object API (``matplotlib.figure.Figure``, Agg canvas): no pyplot, no global state.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from posevae.files import atomic_write, atomic_write_text
from posevae.errors import UserError
from posevae.training.loop import METRIC_COLUMNS

# ------------------------------------------------------------------------------------------- styles


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

FIGURE_SIZE = (7.0, 4.2)  # inches; 1050 x 630 px at DPI
DPI = 150


# --------------------------------------------------------------------------------------------- runs


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
    """Read one run folder (config.json, metrics.csv, val_psnr_per_frame.csv, test/summary.json)."""
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
    return RunData(name or path.name, path, config, metrics, per_frame, test, per_frame_pose=per_frame_pose)


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


# ------------------------------------------------------------------------------------------ figures


def save_figure(fig: Figure, stem: Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write ``stem``.png and ``stem``.svg atomically (no dates or random ids: same data, same bytes).

    SVG text is drawn as paths, so the SVG needs no font on the reader's machine."""
    paths = []
    meta = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}
    with rc_context({"svg.hashsalt": "posevae", "svg.fonttype": "path"}):
        for fmt in formats:
            path = stem.with_suffix(f".{fmt}")
            atomic_write(path, lambda tmp, fmt=fmt: fig.savefig(
                tmp, format=fmt, dpi=DPI, metadata=meta[fmt], facecolor="white"))
            paths.append(path)
    return paths


def _new_axes(title: str, xlabel: str, ylabel: str, size: tuple[float, float] = FIGURE_SIZE):
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _plot_runs(ax, runs: Sequence[RunData], column: str, *,
               label_suffix: Callable[[RunData], str] | None = None) -> int:
    """One line per run of metrics[column] against 1-based epochs; returns how many runs had values."""
    drawn = 0
    for run in runs:
        y = run.metrics.get(column)
        if y is None or not np.isfinite(y).any():
            continue
        x = run.epochs
        s = run.style
        ax.plot(x, y, color=s.colour, linestyle=s.linestyle, marker=s.marker, markersize=4,
                markevery=max(1, len(x) // 20), linewidth=1.6,
                label=run.name + (label_suffix(run) if label_suffix else ""))
        drawn += 1
    _epoch_axis(ax, runs)
    if not drawn:
        _say_empty(ax, f"{column} values in its metrics.csv")
    return drawn


def _integer_ticks() -> MaxNLocator:
    """Ticks at whole numbers in steps of 1, 2, 5 or 10 x a power of ten (1, 2, 5, 10, 20, 50, 100 ...)."""
    return MaxNLocator(integer=True, steps=[1, 2, 5, 10])


def _say_empty(ax, what: str) -> None:
    """Say so in the plot when no run has the data (an old metrics.csv, no best epoch yet ...)."""
    ax.text(0.5, 0.5, f"no run has {what}", transform=ax.transAxes, ha="center", va="center", color="0.4")


def _epoch_axis(ax, runs: Sequence[RunData]) -> None:
    last = max((int(run.epochs.max()) for run in runs), default=1)
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_xlim(0.5, last + 0.5)  # epochs are 1-based: no epoch 0 on the axis


def _log_scale_if_wide(ax, runs: Sequence[RunData], column: str) -> bool:
    """Log y-axis when the positive values span more than two decades (KL before beta > 0, ...)."""
    values = np.concatenate([run.metrics.get(column, np.array([])) for run in runs])
    values = values[np.isfinite(values)]
    if values.size and (values > 0).all() and values.max() / values.min() > 100:
        ax.set_yscale("log")
        return True
    return False


def _legend(ax, extra: Sequence[Any] = ()) -> None:
    handles, labels = ax.get_legend_handles_labels()
    handles += [h for h in extra]
    labels += [h.get_label() for h in extra]
    if handles:
        ax.legend(handles, labels, loc="best", fontsize="small", framealpha=0.85)


def _kl_unit(runs: Sequence[RunData]) -> str:
    norms = {run.config.get("train", {}).get("kl_norm", "elements") for run in runs}
    if norms == {"batch"}:
        return "nats per sample"
    if norms == {"elements"}:
        return "nats per latent element"
    return "nats (runs normalise differently)"


def _noise_note(runs: Sequence[RunData]) -> str:
    scales = {run.config.get("sample", {}).get("noise_scale") for run in runs}
    return f"z ~ N(0, {scales.pop()}²I)" if len(scales) == 1 and None not in scales else "z from the prior"


def _val_frames(runs: Sequence[RunData]) -> str:
    lengths = {run.config.get("data", {}).get("val_vi_len") for run in runs}
    return f"{lengths.pop()}-frame " if len(lengths) == 1 and None not in lengths else ""


def fig_beta(runs: Sequence[RunData], stem: Path) -> list[Path]:
    fig, ax = _new_axes("KL weight β per epoch (KL annealing schedule)", "epoch", "β (weight of the KL term)")
    _plot_runs(ax, runs, "beta", label_suffix=lambda r: "" if r.name == r.strategy else f" ({r.strategy})")
    ax.set_ylim(-0.05, 1.1)
    _legend(ax)
    return save_figure(fig, stem)


def _best_epoch_index(run: RunData) -> int | None:
    """Index (0-based row) of the run's best epoch: the highest whole-frame val_psnr, as training chooses."""
    val = run.metrics["val_psnr"]
    return int(np.nanargmax(val)) if np.isfinite(val).any() else None


def fig_val_psnr(runs: Sequence[RunData], stem: Path) -> list[Path]:
    return _fig_psnr_per_epoch(runs, stem, "val_psnr", "Validation PSNR per epoch")


def fig_val_psnr_pose(runs: Sequence[RunData], stem: Path) -> list[Path]:
    return _fig_psnr_per_epoch(runs, stem, "val_psnr_pose", "Validation pose-region PSNR per epoch")


def _fig_psnr_per_epoch(runs: Sequence[RunData], stem: Path, column: str, title: str) -> list[Path]:
    """A PSNR column of metrics.csv per epoch, runs overlaid; a star on each run's best epoch (val_psnr)."""
    fig, ax = _new_axes(f"{title} ({_val_frames(runs)}video, {_noise_note(runs)})", "epoch", "PSNR (dB)")
    _plot_runs(ax, runs, column)
    best = None
    for run in runs:
        y, i = run.metrics[column], _best_epoch_index(run)
        if i is not None and np.isfinite(y[i]):
            best = ax.plot(run.epochs[i], y[i], marker="*", markersize=13, color=run.style.colour,
                           markeredgecolor="black", linestyle="none", zorder=5)[0]
    extra = []
    if best is not None:
        extra = [Line2D([], [], marker="*", markersize=11, color="white", markeredgecolor="black",
                        linestyle="none", label="best epoch of the run")]
    _legend(ax, extra)
    return save_figure(fig, stem)


def _fig_val_metric(runs: Sequence[RunData], stem: Path, column: str, title: str, ylabel: str) -> list[Path]:
    """One validation metric per epoch, runs overlaid; a log axis when the values span more than 100x."""
    fig, ax = _new_axes(title, "epoch", ylabel)
    _plot_runs(ax, runs, column)
    if _log_scale_if_wide(ax, runs, column):
        ax.set_ylabel(ax.get_ylabel() + ", log scale")
    _legend(ax)
    return save_figure(fig, stem)


def fig_val_kl(runs: Sequence[RunData], stem: Path) -> list[Path]:
    return _fig_val_metric(runs, stem, "val_kl", "Validation KL divergence per epoch",
                           f"KL(q ‖ N(0, I)) ({_kl_unit(runs)})")


def fig_val_loss(runs: Sequence[RunData], stem: Path) -> list[Path]:
    return _fig_val_metric(runs, stem, "val_loss", "Total validation loss per epoch (MSE + β·KL)",
                           "loss = MSE + β·KL")


def fig_val_mse(runs: Sequence[RunData], stem: Path) -> list[Path]:
    return _fig_val_metric(runs, stem, "val_mse", "Validation reconstruction MSE per epoch",
                           "MSE per pixel (pixel values in [0, 1])")


def _same_series(runs: Sequence[RunData], column: str) -> bool:
    """Whether every run logged the same values of ``column`` over the same epochs (e.g. one shared
    teacher-forcing schedule): then one line says it, instead of identical lines hiding each other."""
    series = [run.metrics.get(column) for run in runs]
    return (len(runs) > 1 and all(s is not None for s in series)
            and all(len(s) == len(series[0]) and np.array_equal(s, series[0], equal_nan=True)
                    for s in series))


def fig_tfr(runs: Sequence[RunData], stem: Path) -> list[Path]:
    fig, ax = _new_axes("Teacher-forcing ratio per epoch", "epoch", "teacher-forcing ratio (probability)")
    shared = _same_series(runs, "tfr") and _same_series(runs, "teacher_forcing")
    if shared:  # one schedule for all runs (compare's usual case): one line, in black
        run = max(runs, key=lambda r: len(r.epochs))
        ax.plot(run.epochs, run.metrics["tfr"], color="black", linewidth=1.6, marker="o", markersize=4,
                markevery=max(1, len(run.epochs) // 20), label=f"all {len(runs)} runs (same schedule)")
        _epoch_axis(ax, runs)
        groups = [(run, "black")]
    else:
        _plot_runs(ax, runs, "tfr")
        groups = [(run, run.style.colour) for run in runs]
    used = False
    for run, colour in groups:
        y = run.metrics.get("teacher_forcing")
        if y is not None and np.isfinite(y).any():
            ax.plot(run.epochs, y, marker="o", markersize=8, linestyle="none", markerfacecolor="none",
                    markeredgecolor=colour, alpha=0.8)
            used = True
    ax.set_ylim(-0.05, 1.1)
    extra = []
    if used:
        extra = [Line2D([], [], marker="o", markersize=8, linestyle="none", markerfacecolor="none",
                        markeredgecolor="black", label="share of training steps teacher-forced")]
    _legend(ax, extra)
    return save_figure(fig, stem)


def fig_per_frame_psnr(runs: Sequence[RunData], stem: Path) -> list[Path]:
    return _fig_per_frame(runs, stem, [run.per_frame for run in runs], "Per-frame PSNR",
                          "a val_psnr_per_frame.csv")


def fig_per_frame_psnr_pose(runs: Sequence[RunData], stem: Path) -> list[Path]:
    return _fig_per_frame(runs, stem, [run.per_frame_pose for run in runs], "Per-frame pose-region PSNR",
                          "a psnr_pose column in its val_psnr_per_frame.csv")


def _fig_per_frame(runs: Sequence[RunData], stem: Path, curves: Sequence[np.ndarray | None], title: str,
                   missing: str) -> list[Path]:
    """One per-frame curve per run (``curves``, in the order of ``runs``) over the validation video."""
    fig, ax = _new_axes(f"{title} on the {_val_frames(runs)}validation video (each run's best epoch)",
                        "frame of the validation video (frame 0 is given)", "PSNR (dB)")
    if all(curve is None or not np.isfinite(curve).any() for curve in curves):
        _say_empty(ax, missing)
    for run, curve in zip(runs, curves, strict=True):
        if curve is None or not np.isfinite(curve).any():
            continue
        best = _best_epoch_index(run)
        frames = np.arange(1, len(curve) + 1)  # frame 0 is given, frames 1..N-1 are predicted
        # solid lines: dashes break up on hundreds of jagged points; the colours tell the runs apart
        ax.plot(frames, curve, color=run.style.colour, linewidth=1.1, alpha=0.85,
                label=f"{run.name}: epoch {run.epochs[best]:.0f}, mean {np.nanmean(curve):.2f} dB"
                if best is not None else run.name)
    ax.xaxis.set_major_locator(_integer_ticks())
    _legend(ax)
    return save_figure(fig, stem)


def psnr_curve(frames: np.ndarray, psnr_db: np.ndarray, title: str, style: Style, stem: Path,
               xlabel: str = "frame", pose_db: np.ndarray | None = None) -> list[Path]:
    """The small per-frame PSNR curve shown under a GIF (wide and short, to match the GIF's width), with the
    pose-region PSNR of the same frames beside it when given; PNG only, for the page."""
    fig, ax = _new_axes(title, xlabel, "PSNR (dB)", size=(6.4, 2.3))
    ax.plot(frames, psnr_db, color=style.colour, linewidth=1.2, label="whole frame")
    ax.axhline(float(np.nanmean(psnr_db)), color="black", linewidth=0.8, linestyle="--",
               label=f"whole-frame mean {np.nanmean(psnr_db):.2f} dB")
    if pose_db is not None and np.isfinite(pose_db).any():
        ax.plot(frames, pose_db, color="0.35", linewidth=1.0, linestyle=":",
                label=f"pose region, mean {np.nanmean(pose_db):.2f} dB")
    ax.set_xlim(frames.min() - 0.5, frames.max() + 0.5)
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.legend(loc="best", fontsize="small", framealpha=0.85)
    return save_figure(fig, stem, formats=("png",))


# (file name, drawing function, caption on the page), in the seed report's order
def fig_person_crops(runs: Sequence[RunData], stem: Path) -> list[Path]:
    """Crops around the dancer at a few frames of the first test sequence with ground truth: the truth, then
    each tested run's prediction (posevae.report.crops)."""
    from posevae.report.crops import crop_indices, draw_person_crops, first_source_with_truth, read_predicted

    source, predictions = None, {}
    for run in runs:
        if run.test is None:  # not tested, or tested without ground truth
            continue
        model = run.config.get("model", {})
        dataset = run.test.get("dataset") or run.config.get("data", {}).get("DR")
        if source is None and dataset:
            source = first_source_with_truth(dataset, model.get("frame_H", 32), model.get("frame_W", 64))
        if source is not None:
            indices = crop_indices(source.truth.shape[0])
            frames = read_predicted(run.path, source, indices)
            if frames is not None:
                predictions[run.name] = frames
    if not predictions:
        fig, ax = _new_axes("Crops around the dancer", "", "")
        _say_empty(ax, "test frames with ground truth (posevae test into RUN/test)")
        return save_figure(fig, stem)
    return save_figure(draw_person_crops(source, predictions, indices, FIGURE_SIZE), stem)


FIGURES: list[tuple[str, Callable[[Sequence[RunData], Path], list[Path]], str]] = [
    ("fig1_beta", fig_beta, "KL weight β per epoch under each annealing strategy."),
    ("fig2_val_psnr", fig_val_psnr, (
        "Validation PSNR per epoch: the whole validation video generated autoregressively from its first "
        "frame with z from the prior, as at test time; stars mark each run's best epoch (its best "
        "checkpoint).")),
    ("fig3_val_kl", fig_val_kl, (
        "Validation KL divergence of the posterior per epoch (rollout with z from the posterior of the true "
        "frames).")),
    ("fig4_val_loss", fig_val_loss, "Total validation loss MSE + β·KL per epoch, with the epoch's β."),
    ("fig5_val_mse", fig_val_mse, (
        "Validation reconstruction MSE per epoch (rollout with z from the posterior).")),
    ("fig6_tfr", fig_tfr, (
        "Teacher-forcing ratio per epoch (line) and the share of training steps that were teacher-forced "
        "(circles; drawn at random with that probability).")),
    ("fig7_per_frame_psnr", fig_per_frame_psnr, (
        "Per-frame PSNR over the validation video at each run's best epoch: the error grows as the rollout "
        "drifts from the truth.")),
    ("fig8_val_psnr_pose", fig_val_psnr_pose, (
        "Validation PSNR over the pose region only (each frame's pose label, dilated by 1 px) per epoch, "
        "same rollout as Figure 2; stars mark each run's best epoch by whole-frame PSNR. The background "
        "dominates whole-frame PSNR; this shows whether the dancer's limbs and head are kept.")),
    ("fig9_per_frame_psnr_pose", fig_per_frame_psnr_pose, (
        "Per-frame pose-region PSNR over the validation video at each run's best epoch, beside Figure 7.")),
    ("fig10_person_crops", fig_person_crops, (
        "Crops around the dancer (the person box of the true frame's pose label, enlarged) at a few frames of "
        "the first test sequence: the true frame, then each run's prediction. Whole frames hide whether arms, "
        "hands and head are kept; these crops show it.")),
]


def write_figures(runs: Sequence[RunData], folder: Path) -> dict[str, list[Path]]:
    """Every figure of FIGURES as folder/<name>.png and .svg; returns {name: [png, svg]}."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: draw(runs, folder / name) for name, draw, _ in FIGURES}


# -------------------------------------------------------------------------------------------- table

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


# ------------------------------------------------------------------------------------------- videos


@dataclass
class Clip:
    """A GIF of predicted | true frames and its per-frame PSNR curve, for the page."""

    title: str
    gif: Path  # under the report folder
    curve: Path  # PNG under the report folder
    note: str = ""


def render_val_compare(run: Path, *, device: str = "auto") -> tuple[Path, Path]:
    """Roll out the run's best checkpoint on its validation video, as validation does (z from the prior,
    the run's noise_scale and sample_seed): writes RUN/val_compare.gif (predicted | true, side by side) and
    RUN/val_compare_psnr.csv (frame, psnr, psnr_pose, psnr_box of that rollout). Skips the work when both
    are newer than the checkpoint and the CSV has the pose column. Raises UserError when the checkpoint or
    the dataset cannot be read."""
    import torch

    from posevae.model.checkpoint import load_checkpoint
    from posevae.data.lab import load_val_video
    from posevae.device import resolve_device
    from posevae.evaluation.predict import GIF_FPS
    from posevae.media import save_gif, side_by_side, to_uint8
    from posevae.metrics import frame_and_person_psnr
    from posevae.model.vae import PoseVAE
    from posevae.model.rollout import generate, to_unit_float
    from posevae.training.loop import per_frame_csv

    ckpt_path = run / "checkpoints" / "best.safetensors"
    gif, csv_path = run / "val_compare.gif", run / "val_compare_psnr.csv"
    if (gif.is_file() and csv_path.is_file() and ckpt_path.is_file()
            and min(gif.stat().st_mtime, csv_path.stat().st_mtime) >= ckpt_path.stat().st_mtime
            and "psnr_pose" in csv_path.read_text().partition("\n")[0].split(",")):  # else: an older CSV
        return gif, csv_path
    ckpt = load_checkpoint(ckpt_path)
    cfg = ckpt.config
    video = load_val_video(cfg.data.DR, cfg.model.frame_H, cfg.model.frame_W, cfg.data.val_vi_len,
                           cfg.data.cache_dir)
    dev = resolve_device(device)
    model = PoseVAE(cfg.model)
    model.load_state_dict(ckpt.model_state)
    model.to(dev)
    frames = to_unit_float(video.frames[None], dev)  # (1, T, 3, H, W)
    poses = to_unit_float(video.labels[None], dev)
    gen = torch.Generator(dev).manual_seed(cfg.sample.sample_seed)
    pred = generate(model, frames[:, 0], poses, noise_scale=cfg.sample.noise_scale, generator=gen)[0]
    per_frame = {name: values.cpu().tolist()  # frames 1..T-1; frame 0 is given
                 for name, values in frame_and_person_psnr(pred[1:], frames[0, 1:], poses[0, 1:]).items()}
    pred_u8 = to_uint8(pred).cpu()
    pred_u8[0] = video.frames[0]
    scale = max(1, math.ceil(64 / cfg.model.frame_H))
    save_gif(gif, side_by_side(pred_u8, video.frames), fps=GIF_FPS, scale=scale)
    atomic_write_text(csv_path, per_frame_csv(per_frame))
    return gif, csv_path


def collect_clips(run: RunData, media: Path, *, gifs: bool = True,
                  device: str = "auto") -> tuple[list[Clip], str]:
    """The GIFs of one run, copied into ``media`` with their PSNR curves: the validation video at the best
    epoch (rendered by :func:`render_val_compare` when ``gifs``) and the test sequences of RUN/test (``posevae
    test`` output with ground truth). Returns the clips and a note on what is missing, if anything."""
    clips: list[Clip] = []
    notes = []
    tag = slug(run.name)
    if gifs and (run.path / "checkpoints" / "best.safetensors").is_file():
        try:
            gif, csv_path = render_val_compare(run.path, device=device)
        except UserError as err:
            notes.append(f"No validation GIF: {err}")
        else:
            curve = read_csv_columns(csv_path)
            dest = media / f"{tag}_val_compare.gif"
            shutil.copyfile(gif, dest)
            stem = media / f"{tag}_val_psnr_curve"
            psnr_curve(curve["frame"], curve["psnr"], f"{run.name}: per-frame PSNR of the validation GIF",
                       run.style, stem, xlabel="frame of the validation video",
                       pose_db=curve.get("psnr_pose"))
            clips.append(Clip("Validation video, best epoch", dest, stem.with_suffix(".png")))
    elif gifs:
        notes.append("No validation GIF: the run has no checkpoints/best.safetensors.")
    scores = run.test_dir / "scores.csv"
    if scores.is_file():
        with open(scores, newline="") as f:
            by_seq: dict[str, list[tuple[int, float, float]]] = {}  # psnr_pose NaN in an older scores.csv
            for r in csv.DictReader(f):
                by_seq.setdefault(r["sequence"], []).append((int(r["frame"]), _float(r["psnr"]),
                                                             _float(r.get("psnr_pose"))))
        for name, points in sorted(by_seq.items(), key=lambda kv: (not kv[0].isdigit(), kv[0].zfill(9))):
            src = run.test_dir / f"compare_seq{name}.gif"
            if not src.is_file():
                continue
            dest = media / f"{tag}_test_seq{slug(name)}.gif"
            shutil.copyfile(src, dest)
            stem = media / f"{tag}_test_seq{slug(name)}_psnr_curve"
            x, y, pose = (np.array(column) for column in zip(*points))
            psnr_curve(x, y, f"{run.name}: per-frame PSNR of test sequence {name}", run.style, stem,
                       xlabel="frame of the test sequence", pose_db=pose)
            clips.append(Clip(f"Test sequence {name}", dest, stem.with_suffix(".png")))
    return clips, " ".join(notes)


# ------------------------------------------------------------------------------------------- report


def write_report(runs: list[Path], out: Path, names: list[str] | None = None, *, gifs: bool = True,
                 device: str = "auto", title: str = "posevae: KL annealing and teacher forcing") -> Path:
    """Read the run folders; write out/figures/*.png|svg, out/table.md|csv, out/media/ and out/index.html.

    ``names`` label the runs in legends and the table (default: the folder names). ``gifs`` renders each
    run's validation GIF from its best checkpoint (needs the run's dataset; written into the run folder and
    reused while the checkpoint is unchanged). Returns the path of index.html.
    """
    from posevae.report.html import write_index

    if not runs:
        raise UserError("posevae report needs at least one run folder.")
    paths = [Path(r) for r in runs]
    data = [load_run(p, n) for p, n in zip(paths, run_names(paths, names), strict=True)]
    assign_styles(data)
    out = Path(out)
    try:
        (out / "media").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"Cannot write the report into {out} ({err.strerror or err}): choose a writable "
                        "--out.") from None
    figures = write_figures(data, out / "figures")
    rows = table_rows(data)
    write_tables(rows, out)
    clips = {run.name: collect_clips(run, out / "media", gifs=gifs, device=device) for run in data}
    return write_index(out, title=title, rows=rows, figures=figures,
                       captions={name: caption for name, _, caption in FIGURES}, runs=data, clips=clips)
