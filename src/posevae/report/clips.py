"""The page's GIFs: each run's validation video at its best epoch (rendered from the best checkpoint, as
validation rolls it out) and its tested sequences, each with its per-frame PSNR curve.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posevae.errors import UserError
from posevae.files import atomic_write_text
from posevae.report.figures import psnr_curve
from posevae.report.runs import (
    RunData,
    _float,
    read_csv_columns,
    slug,
)


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

    from posevae.data.lab import load_val_video
    from posevae.device import resolve_device
    from posevae.media import GIF_FPS, gif_scale, save_gif, side_by_side, to_uint8
    from posevae.metrics import frame_and_person_psnr
    from posevae.model.checkpoint import load_checkpoint
    from posevae.model.rollout import generate, to_unit_float
    from posevae.model.vae import PoseVAE
    from posevae.run_folder import per_frame_csv

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
    scale = gif_scale(cfg.model.frame_H, min_height=64)
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
            x, y, pose = (np.array(column) for column in zip(*points, strict=True))
            psnr_curve(x, y, f"{run.name}: per-frame PSNR of test sequence {name}", run.style, stem,
                       xlabel="frame of the test sequence", pose_db=pose)
            clips.append(Clip(f"Test sequence {name}", dest, stem.with_suffix(".png")))
    return clips, " ".join(notes)
