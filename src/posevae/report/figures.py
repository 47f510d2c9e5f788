"""The figures of the analysis section, drawn from run folders (``posevae report``).

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
    figures/fig10_person_crops   crops around the dancer, true and each      val_best_frames.npz
                                 run's prediction (best epoch of each run)
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

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from posevae.files import atomic_write
from posevae.report.runs import (
    RunData,
    Style,
    _best_epoch_index,
)

FIGURE_SIZE = (7.0, 4.2)  # inches; 1050 x 630 px at DPI


DPI = 150


def save_figure(fig: Figure, stem: Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write ``stem``.png and ``stem``.svg atomically (no dates or random ids: same data, same bytes).

    SVG text is drawn as paths, so the SVG needs no font on the reader's machine."""
    paths = []
    meta = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}
    with rc_context({"svg.hashsalt": "posevae", "svg.fonttype": "path"}):
        for fmt in formats:
            path = stem.with_suffix(f".{fmt}")
            atomic_write(path, partial(fig.savefig, format=fmt, dpi=DPI, metadata=meta[fmt],
                                       facecolor="white"))
            paths.append(path)
    return paths


def _new_axes(title: str, xlabel: str, ylabel: str,
              size: tuple[float, float] = FIGURE_SIZE) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _plot_runs(ax: Axes, runs: Sequence[RunData], column: str, *,
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


def _say_empty(ax: Axes, what: str) -> None:
    """Say so in the plot when no run has the data (an old metrics.csv, no best epoch yet ...)."""
    ax.text(0.5, 0.5, f"no run has {what}", transform=ax.transAxes, ha="center", va="center", color="0.4")


def _epoch_axis(ax: Axes, runs: Sequence[RunData]) -> None:
    last = max((int(run.epochs.max()) for run in runs), default=1)
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_xlim(0.5, last + 0.5)  # epochs are 1-based: no epoch 0 on the axis


def _log_scale_if_wide(ax: Axes, runs: Sequence[RunData], column: str) -> bool:
    """Log y-axis when the positive values span more than two decades (KL before beta > 0, ...)."""
    values = np.concatenate([run.metrics.get(column, np.array([])) for run in runs])
    values = values[np.isfinite(values)]
    if values.size and (values > 0).all() and values.max() / values.min() > 100:
        ax.set_yscale("log")
        return True
    return False


def _legend(ax: Axes, extra: Sequence[Any] = ()) -> None:
    handles, labels = ax.get_legend_handles_labels()
    handles += list(extra)
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
    series = [s for s in (run.metrics.get(column) for run in runs) if s is not None]
    return (len(runs) > 1 and len(series) == len(runs)
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


def fig_person_crops(runs: Sequence[RunData], stem: Path) -> list[Path]:
    """Crops around the dancer at a few frames of the validation video: the truth, then each run's prediction
    at its best epoch, from RUN/val_best_frames.npz (posevae.report.crops)."""
    from posevae.report.crops import draw_person_crops, val_crops

    crops = val_crops({run.name: run.val_frames for run in runs})
    if crops is None:
        fig, ax = _new_axes("Crops around the dancer", "", "")
        _say_empty(ax, "the best epoch's validation frames (RUN/val_best_frames.npz, written by training)")
        return save_figure(fig, stem)
    source, predictions, indices = crops
    return save_figure(draw_person_crops(source, predictions, indices, FIGURE_SIZE), stem)


# (file name, drawing function, caption on the page), in the seed report's order
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
        "Crops around the dancer (the person box of the true frame's pose label, enlarged) at a few frames "
        "of the validation video: the true frame, then each run's prediction at its best epoch (the rollout "
        "of Figures 7 and 9). Whole frames hide whether arms, hands and head are kept; these crops show "
        "it.")),
]


def write_figures(runs: Sequence[RunData], folder: Path) -> dict[str, list[Path]]:
    """Every figure of FIGURES as folder/<name>.png and .svg; returns {name: [png, svg]}."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: draw(runs, folder / name) for name, draw, _ in FIGURES}
