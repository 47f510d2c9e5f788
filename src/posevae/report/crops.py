"""Crops around the dancer, true against predicted, at a few frame indices of one test sequence.

Whole frames at 32x64 show the dancer a few pixels tall; a crop of the person box, enlarged, shows whether
arms, hands and head are kept. The box comes from the true frame's pose label (:func:`posevae.metrics.
person_box_mask`), widened to a fixed aspect so every crop has the same shape, and is used for the truth and
for every run's prediction of that frame. Reads the dataset's test split (first frame, labels, truth) and
each run's ``RUN/test/seq<name>/frames/<k>.png`` as written by ``posevae test``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from posevae.metrics import person_box_mask

CROP_COLUMNS = 6  # frame indices shown, evenly spaced over frames 1..N-1
CROP_ASPECT = 0.75  # width / height of every crop (a standing person is taller than wide)


@dataclass(frozen=True)
class CropSource:
    """One test sequence with ground truth: its name, true frames and labels, uint8 (N, 3, H, W), and the
    submission.csv id of its frame 0 (the frames of the sequences before it)."""

    name: str
    truth: np.ndarray
    labels: np.ndarray
    first_id: int = 0


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


def first_source_with_truth(DR: str | Path, frame_H: int, frame_W: int) -> CropSource | None:
    """The first test sequence of ``DR`` that has ground truth, or None (no test split, no truth)."""
    from posevae.data.lab import load_test_sequences
    from posevae.errors import UserError

    try:
        sequences = load_test_sequences(DR, frame_H, frame_W, progress=False)
    except UserError:
        return None
    first_id = 0
    for seq in sequences:
        if seq.truth is not None and seq.truth.shape[0] > 1:
            return CropSource(seq.name, seq.truth.numpy(), seq.labels.numpy(), first_id)
        first_id += seq.labels.shape[0]
    return None


def read_predicted(run: Path, source: CropSource, indices: list[int]) -> np.ndarray | None:
    """A run's predicted frames at ``indices`` (K, 3, H, W) uint8 from RUN/test: the frame PNGs when
    ``posevae test`` wrote them, else the rows of submission.csv (``posevae compare`` writes no PNGs);
    None when neither is there or the sizes do not fit."""
    folder = run / "test" / f"seq{source.name}" / "frames"
    if all((folder / f"{k}.png").is_file() for k in indices):
        frames = []
        for k in indices:
            with Image.open(folder / f"{k}.png") as im:
                frames.append(np.asarray(im.convert("RGB")).transpose(2, 0, 1))
        if any(f.shape != source.truth.shape[1:] for f in frames):
            return None
        stacked = np.stack(frames)
    else:
        flat = _submission_rows(run / "test" / "submission.csv", [source.first_id + k for k in indices])
        if flat is None or flat.shape[1] != source.truth[0].size:
            return None
        stacked = flat.reshape(len(indices), *source.truth.shape[1:])  # the CSV holds C, H, W order
    return stacked if stacked.shape[1:] == source.truth.shape[1:] else None


def _submission_rows(path: Path, ids: list[int]) -> np.ndarray | None:
    """The rows of the course-format CSV with these ids as flat uint8 frames (K, C*H*W); None when the file
    or a row is missing."""
    if not path.is_file():
        return None
    wanted, rows = set(ids), {}
    with open(path) as f:
        next(f, None)  # header: id,0,1,...
        for line in f:
            row_id = int(line[:line.index(",")])
            if row_id in wanted:
                rows[row_id] = np.array(line.rstrip("\n").split(",")[1:], dtype=np.uint8)
                if len(rows) == len(wanted):
                    break
    if len(rows) != len(wanted):
        return None
    return np.stack([rows[i] for i in ids])


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
    fig.suptitle(f"Test sequence {source.name}: crops around the dancer", fontsize=10)
    return fig
