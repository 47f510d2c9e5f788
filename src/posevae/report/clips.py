"""The page's GIFs: each run's validation video at its best epoch and its tested sequences, each with its
per-frame PSNR curve. Everything comes from the run folder: RUN/val_best_frames.npz (the rollout validation
scored at the best epoch, written by training) with RUN/val_psnr_per_frame.csv, and RUN/test (``posevae
test``); nothing is rolled out here and nothing is written into the run folder.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from posevae.media import GIF_FPS, gif_scale, save_gif, side_by_side
from posevae.report.figures import psnr_curve
from posevae.report.runs import (
    RunData,
    _float,
    slug,
)
from posevae.run_folder import VAL_FRAMES


@dataclass
class Clip:
    """A GIF of predicted | true frames and its per-frame PSNR curve, for the page."""

    title: str
    gif: Path  # under the report folder
    curve: Path  # PNG under the report folder
    note: str = ""


def val_clip(run: RunData, media: Path) -> tuple[Clip | None, str]:
    """The validation video at the run's best epoch as media/<run>_val_compare.gif (predicted | true) with its
    per-frame PSNR curve (val_psnr_per_frame.csv: the same rollout); or None and why not, in one line."""
    frames = run.val_frames
    if frames is None:
        return None, f"No validation GIF: {run.val_frames_note}"
    per_frame = run.per_frame
    steps = frames.pred.shape[0] - 1
    if per_frame is None or len(per_frame) != steps:
        return None, (f"No validation GIF: {run.path / 'val_psnr_per_frame.csv'} does not hold the {steps} "
                      f"frames of {run.path / VAL_FRAMES}; train the run again to rewrite both.")
    tag = slug(run.name)
    gif = media / f"{tag}_val_compare.gif"
    save_gif(gif, side_by_side(torch.from_numpy(frames.pred), torch.from_numpy(frames.true)), fps=GIF_FPS,
             scale=gif_scale(frames.pred.shape[2], min_height=64))
    stem = media / f"{tag}_val_psnr_curve"
    psnr_curve(np.arange(1, steps + 1), per_frame, f"{run.name}: per-frame PSNR of the validation GIF",
               run.style, stem, xlabel="frame of the validation video", pose_db=run.per_frame_pose)
    return Clip(f"Validation video, best epoch ({frames.epoch + 1})", gif, stem.with_suffix(".png")), ""


def collect_clips(run: RunData, media: Path, *, gifs: bool = True) -> tuple[list[Clip], str]:
    """The GIFs of one run, written into ``media`` with their PSNR curves: the validation video at the best
    epoch (:func:`val_clip`, when ``gifs``) and the test sequences of RUN/test (``posevae test`` output with
    ground truth). Returns the clips and a note on what is missing, if anything."""
    clips: list[Clip] = []
    notes = []
    tag = slug(run.name)
    if gifs:
        clip, note = val_clip(run, media)
        clips += [clip] if clip is not None else []
        notes += [note] if note else []
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
            x, y, pose = (np.array(column) for column in zip(*points, strict=True))
            psnr_curve(x, y, f"{run.name}: per-frame PSNR of test sequence {name}", run.style, stem,
                       xlabel="frame of the test sequence", pose_db=pose)
            clips.append(Clip(f"Test sequence {name}", dest, stem.with_suffix(".png")))
    return clips, " ".join(notes)
