"""Crops around the dancer, true against predicted, at a few frame indices of the validation video.

Whole frames at 32x64 show the dancer a few pixels tall; a crop of the person box, enlarged, shows whether
arms, hands and head are kept. The box comes from the true frame's pose label (:func:`posevae.metrics.
person_box_mask`), widened to a fixed aspect so every crop has the same shape, and is used for the truth and
for every run's prediction of that frame. Reads each run's ``RUN/val_best_frames.npz`` (the rollout
validation scored at the best epoch, with the true frames and labels), as written by training.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from posevae.metrics import person_box_mask
from posevae.run_folder import ValFrames

CROP_COLUMNS = 6  # frame indices shown, evenly spaced over frames 1..N-1
CROP_ASPECT = 0.75  # width / height of every crop (a standing person is taller than wide)


@dataclass(frozen=True)
class CropSource:
    """One video with ground truth: its name, true frames and labels, uint8 (N, 3, H, W)."""

    name: str
    truth: np.ndarray
    labels: np.ndarray


def crop_indices(n_frames: int, count: int = CROP_COLUMNS) -> list[int]:
    """Up to ``count`` frame indices evenly spaced over 1..n_frames-1 (frame 0 is given, not predicted)."""
    if n_frames < 2:
        return []
    return sorted({int(round(x)) for x in np.linspace(1, n_frames - 1, count)})


def crop_box(label: np.ndarray, aspect: float = CROP_ASPECT) -> tuple[int, int, int, int] | None:
    """The person box of one label (3, H, W) uint8, widened to width/height ``aspect`` and kept inside the
    frame: (top, bottom, left, right), bottom/right exclusive; None for a label with no pose pixel."""
    mask = person_box_mask(torch.from_numpy(label)).numpy()
    if not mask.any():
        return None
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    H, W = mask.shape
    height = rows[-1] + 1 - rows[0]
    width = max(cols[-1] + 1 - cols[0], int(round(height * aspect)))
    height = max(height, int(round(width / aspect)))
    height, width = min(height, H), min(width, W)
    top = _centred_start(rows[0], rows[-1] + 1, height, H)
    left = _centred_start(cols[0], cols[-1] + 1, width, W)
    return top, top + height, left, left + width


def _centred_start(lo: int, hi: int, size: int, limit: int) -> int:
    """The start of a window of ``size`` centred on [lo, hi), shifted to lie within [0, limit)."""
    start = (lo + hi - size) // 2
    return int(min(max(start, 0), limit - size))


def val_crops(frames_by_run: Mapping[str, ValFrames | None]
              ) -> tuple[CropSource, dict[str, np.ndarray], list[int]] | None:
    """The crops' source (the first run's true validation frames and labels), each run's predicted frames at
    the crop indices, and those indices; runs without frames, or whose true frames differ from the
    source's (another dataset or size), are left out. None when no run has frames to crop."""
    source, predictions, indices = None, {}, []
    for name, frames in frames_by_run.items():
        if frames is None:
            continue
        if source is None:
            indices = crop_indices(frames.true.shape[0])
            if not indices:
                continue
            source = CropSource("Validation video at each run's best epoch", frames.true, frames.labels)
        if frames.true.shape == source.truth.shape and np.array_equal(frames.true[indices],
                                                                      source.truth[indices]):
            predictions[name] = frames.pred[indices]
    return (source, predictions, indices) if source is not None else None


def draw_person_crops(source: CropSource, predictions: dict[str, np.ndarray], indices: list[int],
                      size: tuple[float, float] = (10.5, 6.3)) -> Figure:
    """Rows: the truth, then each run's prediction; columns: the frame indices; each cell the same crop.
    ``size``: the figure's size in inches (the report's figures share one)."""
    rows = {"true": source.truth[indices], **predictions}
    boxes = [crop_box(source.labels[k]) for k in indices]
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(len(rows), len(indices), squeeze=False)
    for r, (name, frames) in enumerate(rows.items()):
        for c, (k, box) in enumerate(zip(indices, boxes, strict=True)):
            ax = axes[r][c]
            img = frames[c].transpose(1, 2, 0)
            if box is not None:
                top, bottom, left, right = box
                img = img[top:bottom, left:right]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {k}", fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.suptitle(f"{source.name}: crops around the dancer", fontsize=10)
    return fig
