"""Test-time generation: every test sequence rolled out from its first frame, written as the course asks.

For each test sequence ``DR/test/test_img/<i>`` + ``test_label/<i>`` the model predicts frames 1..N-1 from
the given first frame and the N poses (:func:`posevae.model.rollout.generate`, z from the prior
N(0, noise_scale^2 I)). :func:`predict_test_split` writes, under ``out`` only::

    submission.csv            the course's leaderboard format (docs/course.md, "Submission")
    pred_seq<i>.gif           the prediction, looping, upscaled so 32x64 frames are visible
    pred_seq<i>.mp4           the same, only when imageio-ffmpeg is installed (``posevae[mp4]``)
    seq<i>/frames/<k>.png     every predicted frame as a PNG (``write_frames``)
    compare_seq<i>.gif        prediction | truth, side by side      (only with DR/test/test_gt/<i>)
    scores.csv                per-frame PSNR / SSIM, frames 1..N-1  (only with ground truth), the
                              baseline's PSNR, pose-region and person-box PSNR ("nan": empty label)
    samples.csv               with --samples N: per-frame mean-of-N, best-of-N, deterministic and
                              posterior-bound PSNR / SSIM / pose / box PSNR; samples_seq<i>.gif: truth |
                              sample 0 .. N-1
    summary.json              per-sequence and mean PSNR / SSIM / pose / box PSNR, the repeat-the-first-
                              frame baseline, and how the frames were made (checkpoint, noise_scale, seed)

Metrics are computed on the uint8 frames that were written (round(x * 255), as in the CSV), not on the
model's floats, so anyone recomputing PSNR from submission.csv gets the same numbers. Pose-region and
person-box PSNR (:mod:`posevae.metrics`) look at the pixels of each frame's pose label only; a sequence's
value is the mean over its frames with a non-empty label, null when no label has a pose pixel.

Sequence i is drawn with its own ``torch.Generator`` seeded ``seed + i`` (i = the number of its folder), so
the same seed gives the same frames on the same device (:mod:`posevae.evaluation.batches`). Frame 0 of every
sequence is the given first frame, unchanged.

Scores need ground truth (``DR/test/test_gt/<i>``), which the course does not hand out: sequences without it
are generated and written, and their scores are null in summary.json (absent from scores.csv);
``summary["scores_skipped"]`` says why. PSNR and SSIM are per frame (frames 1..N-1) as in the lab, then
averaged; ``baseline_psnr`` is the PSNR of repeating the first frame: a model must beat it to have learned
motion (:mod:`posevae.evaluation.scores`).

submission.csv needs sequences of equal length: its ids run over every frame of every sequence, so one
missing pose image would shift every later id. When the lengths differ, frames, GIFs and scores are still
written, submission.csv is not, and a UserError naming the odd sequence is raised at the end, unless
``allow_unequal_lengths``. A submission.csv of another shape than the course's 5 sequences of 630 frames of
32x64 (a ``num_frames`` run, a small dataset) is written as asked, and ``summary["submission_note"]`` says in
one line that it is not a course submission (:func:`posevae.evaluation.submission.course_shape_note`).

The sampling options (``noise_scale``, ``z_mode``, ``num_frames``, ``samples``) are checked by
:func:`check_sampling_options`, which ``posevae transfer`` shares.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from posevae.data.lab import TestSequence, load_test_sequences
from posevae.device import resolve_device
from posevae.errors import UserError
from posevae.evaluation.batches import Rollouts, generate_rollouts
from posevae.evaluation.pose_inputs import too_few_poses
from posevae.evaluation.scores import (
    SAMPLE_COLUMNS,
    SCORE_COLUMNS,
    Scores,
    csv_text,
    multi_sample_scores,
    multi_sample_summary,
    score_sequence,
    summarise,
)
from posevae.evaluation.submission import COURSE_FRAMES, course_shape_note, unequal_lengths, write_submission
from posevae.files import atomic_write_text, ensure_writable_folder
from posevae.media import GIF_FPS, gif_scale, save_frames_png, save_gif, save_mp4, side_by_side, tile
from posevae.model.checkpoint import Checkpoint, model_from_checkpoint
from posevae.model.rollout import Z_MODES
from posevae.model.template_ckpt import open_checkpoint

SAMPLES_GIF_WIDTH = 1280  # samples_seq<i>.gif (truth | N samples) is upscaled less, to stay this narrow
# --num_frames counts the frames written, the given first frame included: one frame alone predicts nothing
MIN_FRAMES = 2


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _good_noise(value: object) -> bool:
    """Whether ``value`` is a noise scale: a finite number >= 0."""
    if isinstance(value, bool):
        return False
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and number >= 0


def check_sampling_options(*, z_mode: str, noise_scale: float | None, num_frames: int | None,
                           samples: int | None = None) -> None:
    """The one check of the sampling options ``posevae test`` and ``posevae transfer`` share (the CLI adds
    them with ``posevae.cli.evaluation.add_sampling_options``): a one-line UserError naming the fix.

    ``num_frames`` (None: one frame per pose) counts the frames written, the given first frame included, so
    it is at least 2; ``noise_scale`` None is the checkpoint's (checked by :func:`noise_scale_of`);
    ``samples`` (``posevae test`` only) at least 1, and more than 1 only with ``z_mode`` "sample".
    """
    if z_mode not in Z_MODES:
        raise UserError(f"--z_mode must be one of {', '.join(Z_MODES)}, got {z_mode!r}.")
    if num_frames is not None and not (_is_int(num_frames) and num_frames >= MIN_FRAMES):
        raise UserError(f"--num_frames must be an integer >= {MIN_FRAMES}, got {num_frames!r}: it counts the "
                        "frames written, the given first frame included, and one frame predicts nothing; "
                        f"pass --num_frames {MIN_FRAMES} or more, or leave it out for one frame per pose.")
    if samples is not None and not (_is_int(samples) and samples >= 1):
        raise UserError(f"--samples must be >= 1, got {samples!r}: pass --samples N with N >= 1 (rollouts "
                        "per sequence), or leave it out for one.")
    if samples is not None and samples > 1 and z_mode == "mean":
        raise UserError("--samples draws several latents per sequence, but --z_mode mean has only one: use "
                        "--z_mode sample with --samples (the deterministic rollout is scored as well).")
    _check_noise_option(noise_scale)


def _check_noise_option(noise_scale: float | None) -> None:
    if noise_scale is not None and not _good_noise(noise_scale):
        raise UserError(f"--noise_scale must be a finite number >= 0, got {noise_scale!r}: pass e.g. "
                        "--noise_scale 0.5 (0: the prior's mean), or leave it out for the checkpoint's.")


def noise_scale_of(checkpoint: Checkpoint, noise_scale: float | None) -> float:
    """The latent noise scale: ``noise_scale`` when given, else the checkpoint's ``sample.noise_scale``;
    UserError when that is not a finite number >= 0."""
    if noise_scale is not None:
        _check_noise_option(noise_scale)
        return float(noise_scale)
    stored = checkpoint.config.sample.noise_scale
    if not _good_noise(stored):
        raise UserError(f"The checkpoint's noise scale (sample.noise_scale) is {stored!r}, not a finite "
                        "number >= 0: pass --noise_scale, e.g. 0.5.")
    return float(stored)


def _first_frames(sequences: list[TestSequence], num_frames: int) -> list[TestSequence]:
    """The first ``num_frames`` frames (poses, truth) of each sequence; UserError when one has fewer poses."""
    short = [s for s in sequences if s.labels.shape[0] < num_frames]
    if short:
        s = short[0]
        raise UserError(too_few_poses(f"Test sequence {s.name}", s.labels.shape[0], num_frames,
                                      place=s.label_dir, limit=min(q.labels.shape[0] for q in sequences)))
    return [dataclasses.replace(s, labels=s.labels[:num_frames],
                                truth=None if s.truth is None else s.truth[:num_frames]) for s in sequences]


def _load_sequences(DR: str | Path, H: int, W: int, cache_dir: str | Path | None, num_frames: int | None,
                    progress: bool) -> list[TestSequence]:
    sequences = load_test_sequences(DR, H, W, cache_dir=cache_dir, progress=progress)
    if num_frames is not None:
        sequences = _first_frames(sequences, num_frames)
    for seq in sequences:  # names become output paths (seq<name>/, pred_seq<name>.gif): never outside out
        if "/" in seq.name or os.sep in seq.name or ".." in seq.name or not seq.name:
            raise UserError(f"Test sequence name {seq.name!r} is not a plain folder name: rename its folder.")
    return sequences


def _write_sequence(out: Path, seq: TestSequence, position: int, rollouts: Rollouts, scores: Scores, *,
                    scale: int, write_frames: bool) -> torch.Tensor:
    """Frames, GIFs (MP4) and scores of one sequence; returns its prediction (sample 0, what the CSV
    holds)."""
    seq_samples = rollouts.of(position)
    pred = seq_samples[0]  # (N, 3, H, W) uint8
    tag = f"seq{seq.name}"
    if write_frames:
        save_frames_png(pred, out / tag / "frames")
    save_gif(out / f"pred_{tag}.gif", pred, fps=GIF_FPS, scale=scale)
    save_mp4(out / f"pred_{tag}.mp4", pred, fps=GIF_FPS, scale=scale)
    score_sequence(seq, pred, scores)
    truth = seq.truth if scores.per_sequence[seq.name]["psnr"] is not None else None  # scored against it
    if truth is not None:
        save_gif(out / f"compare_{tag}.gif", side_by_side(pred, truth), fps=GIF_FPS, scale=scale)
    if rollouts.deterministic is not None and rollouts.posterior is not None:
        if truth is not None:
            scores.multi_per_sequence[seq.name], rows = multi_sample_scores(
                seq.name, torch.stack(seq_samples), rollouts.deterministic[position],
                rollouts.posterior[position], truth, seq.labels)
            scores.sample_rows += rows
        grid = tile([seq.truth, *seq_samples] if seq.truth is not None else seq_samples)
        # at most SAMPLES_GIF_WIDTH wide: a sane file size
        save_gif(out / f"samples_{tag}.gif", grid, fps=GIF_FPS,
                 scale=max(1, min(scale, SAMPLES_GIF_WIDTH // grid.shape[-1])))
    return pred


def _replace_or_remove(path: Path, text: str | None) -> None:
    """Write ``text`` to ``path`` atomically, or remove ``path`` (a file of an earlier run would mislead)."""
    if text is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write_text(path, text)


def _write_submission(out: Path, predictions: list[torch.Tensor], mismatch: str | None,
                      allow_unequal_lengths: bool) -> bool:
    """submission.csv, unless the sequences differ in length (and that is not allowed); returns whether it
    was written."""
    if mismatch is None or allow_unequal_lengths:
        write_submission(out / "submission.csv", predictions)
        return True
    (out / "submission.csv").unlink(missing_ok=True)  # an earlier run's would be mistaken for this one's
    return False


def _write_summary(out: Path, scores: Scores, summary: dict[str, Any]) -> None:
    """scores.csv and samples.csv (removed when there is nothing to score), then summary.json."""
    _replace_or_remove(out / "scores.csv",
                       csv_text(SCORE_COLUMNS, scores.score_rows) if scores.score_rows else None)
    _replace_or_remove(out / "samples.csv",
                       csv_text(SAMPLE_COLUMNS, scores.sample_rows) if scores.sample_rows else None)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")


def predict_test_split(
    ckpt: str | Path,
    DR: str | Path,
    out: str | Path,
    *,
    noise_scale: float | None = None,
    seed: int = 1,
    device: str = "auto",
    z_mode: str = "sample",
    progress: bool = True,
    write_frames: bool = True,
    cache_dir: str | Path | None = None,
    num_frames: int | None = None,
    samples: int | None = None,
    allow_unequal_lengths: bool = False,
) -> dict[str, Any]:
    """Generate every test sequence of ``DR`` with checkpoint ``ckpt``; write the results under ``out`` (see
    the module docstring). Returns the summary (also written to ``out/summary.json``).

    ``ckpt``: a posevae ``.safetensors`` file, a run folder, or a course-template ``.ckpt`` (read as the
    template variant with noise scale 1.0, :mod:`posevae.model.template_ckpt`). ``noise_scale`` None uses
    the checkpoint's ``sample.noise_scale``; ``z_mode`` "mean" uses the prior's mean (0, or mu_p with a
    learned prior) instead of samples. ``num_frames`` (default: all, at least 2) writes only the first
    ``num_frames`` frames of each sequence (frame 0, the given one, included); a sequence with fewer poses is
    an error naming its folder. The options are checked first (:func:`check_sampling_options`).
    ``samples`` N (SVG's protocol): N rollouts per sequence (sample k seeded ``seed + i + k * SEED_STRIDE``,
    1,000,003; sample 0 is the one a single run draws) scored as mean-of-N, best-of-N (by mean SSIM), the
    deterministic rollout and the posterior bound, per frame (samples.csv) and per sequence
    (``summary["multi_sample"]``); submission.csv, the GIFs and scores.csv stay those of sample 0.
    ``cache_dir``: the data loader's (default ``DR/.posevae_cache``); everything else is written under
    ``out``.
    """
    check_sampling_options(z_mode=z_mode, noise_scale=noise_scale, num_frames=num_frames, samples=samples)
    checkpoint = open_checkpoint(ckpt)  # a .safetensors, a run folder, or a course-template .ckpt
    noise = noise_scale_of(checkpoint, noise_scale)
    dev = resolve_device(device)
    model = model_from_checkpoint(checkpoint, ckpt, dev)
    H, W = checkpoint.config.model.frame_H, checkpoint.config.model.frame_W
    sequences = _load_sequences(DR, H, W, cache_dir, num_frames, progress)
    mismatch = unequal_lengths(sequences)
    out = prepare_out(Path(out))  # after the input checks, so bad input leaves no output folder behind
    rollouts = generate_rollouts(model, sequences, seed=seed, n_samples=samples or 1,
                                 multi=samples is not None, device=dev, noise=noise, z_mode=z_mode,
                                 progress=progress)
    scores = Scores()
    predictions = [_write_sequence(out, seq, pos, rollouts, scores, scale=gif_scale(H),
                                   write_frames=write_frames)
                   for pos, seq in enumerate(tqdm(sequences, desc="writing", unit="seq",
                                                  disable=not progress))]
    wrote_submission = _write_submission(out, predictions, mismatch, allow_unequal_lengths)
    # one line when submission.csv is not the course's 5 x 630 frames of 32x64 (a --num_frames run, say)
    note = (course_shape_note(len(predictions), [p.shape[0] for p in predictions], (H, W))
            if wrote_submission else None)
    summary: dict[str, Any] = {
        **summarise(DR, scores), "submission": "submission.csv" if wrote_submission else None,
        "submission_note": note, "unequal_lengths": mismatch, "noise_scale": noise, "z_mode": z_mode,
        "prior": checkpoint.config.model.prior, "seed": seed, "checkpoint": str(Path(ckpt).resolve()),
        "dataset": str(Path(DR).resolve()), "device": str(dev),
    }
    if samples is not None:
        summary["multi_sample"] = multi_sample_summary(scores, samples)
    _write_summary(out, scores, summary)
    if not wrote_submission:
        raise UserError(f"{mismatch}: submission.csv was not written, because its ids would shift after that "
                        f"sequence (the course expects equal lengths, {COURSE_FRAMES}). The frames, GIFs and "
                        f"summary are in {out}. Restore the missing pose images, or pass "
                        "--allow_unequal_lengths to write the CSV anyway.")
    return summary


def prepare_out(out: Path) -> Path:
    """Create ``out``; UserError when it cannot be created or written to."""
    return ensure_writable_folder(out, f"Cannot write to the output folder {out} ({{error}}): pass an --out "
                                       "folder that can be created and written to.")

