"""Test-time generation: every test sequence rolled out from its first frame, written as the course asks.

For each test sequence ``DR/test/test_img/<i>`` + ``test_label/<i>`` the model predicts frames 1..N-1 from
the given first frame and the N poses (:func:`posevae.model.rollout.generate`, z from the prior
N(0, noise_scale^2 I)). :func:`test_run` writes, under ``out`` only::

    submission.csv            the course's Kaggle format (shared/reference/LAB4.md, "Test output")
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
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from posevae.data.lab import TestSequence, load_test_sequences
from posevae.device import resolve_device
from posevae.errors import UserError
from posevae.files import atomic_write, atomic_write_text
from posevae.media import (
    GIF_FPS,
    gif_scale,
    save_frames_png,
    save_gif,
    save_mp4,
    side_by_side,
    tile,
    to_uint8,
)
from posevae.metrics import frame_and_person_psnr, psnr, ssim
from posevae.model.checkpoint import Checkpoint
from posevae.model.rollout import generate, reconstruct, to_unit_float
from posevae.model.template_ckpt import open_checkpoint
from posevae.model.vae import PoseVAE

Z_MODES = ("sample", "mean")
MAX_BATCH_ROWS = 16  # rollouts generated together (sequences x samples); bounds the memory of the frames
SAMPLE_SEED_STRIDE = 1_000_003  # sample k of a sequence is seeded with the sequence's seed + k * this
SAMPLES_GIF_WIDTH = 1280  # samples_seq<i>.gif (truth | N samples) is upscaled less, to stay this narrow

_CELL = [str(v) for v in range(256)]  # uint8 value -> its CSV text


def write_submission(path: str | Path, sequences: Sequence[torch.Tensor]) -> int:
    """Write the course's submission CSV (atomically); returns the number of rows.

    ``sequences``: one uint8 tensor (N, C, H, W) per test sequence, in sequence order. Header
    ``id,0,1,...,C*H*W-1``; row ``id`` = running frame number over all sequences (sequence-major), then
    the frame flattened in C, H, W order. 3,150 rows of 6,144 values take about a second.
    """
    if not sequences:
        raise ValueError("write_submission needs at least one sequence")
    n_values = sequences[0][0].numel()
    for s in sequences:
        if s.dtype != torch.uint8 or s.dim() != 4 or s[0].numel() != n_values:
            raise ValueError(f"write_submission needs uint8 (N, C, H, W) tensors of {n_values} values per "
                             f"frame, got {s.dtype} {tuple(s.shape)}")
    rows = 0

    def write(tmp: Path) -> None:
        nonlocal rows
        with open(tmp, "w", newline="", buffering=1 << 20) as f:
            f.write("id," + ",".join(map(str, range(n_values))) + "\n")
            for seq in sequences:
                # a lookup of 256 strings and one join per row: ~4x faster than np.savetxt's '%d' formatting
                for row in seq.reshape(seq.shape[0], -1).cpu().tolist():
                    f.write(f"{rows},{','.join([_CELL[v] for v in row])}\n")
                    rows += 1

    atomic_write(path, write)
    return rows


def model_from_checkpoint(checkpoint: Checkpoint, path: str | Path, device: torch.device) -> PoseVAE:
    """The model a checkpoint describes, with its weights, on ``device``; UserError when they do not fit."""
    model = PoseVAE(checkpoint.config.model)
    try:
        model.load_state_dict(checkpoint.model_state, strict=True)
    except RuntimeError as err:
        first_line = str(err).strip().splitlines()[0]
        raise UserError(f"Checkpoint {path} does not fit the model its own config describes ({first_line}): "
                        "it was written by another posevae version or is damaged; use another checkpoint."
                        ) from None
    return model.to(device)


def _sequence_seed(seed: int, name: str, position: int) -> int:
    """The seed of one sequence: seed + its number (the folder name, e.g. 0..4), else + its position.

    Each sequence has its own generator, so its frames do not depend on which other sequences are
    generated, or in which order.
    """
    return seed + (int(name) if name.isdigit() else position)


def prepare_out(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UserError(f"Cannot write to the output folder {out} ({err.strerror or err}): pass an --out "
                        "folder that can be created and written to.") from None
    return out


def _first_frames(sequences: list[TestSequence], num_frames: int) -> list[TestSequence]:
    """The first ``num_frames`` frames (poses, truth) of each sequence; UserError when one has fewer poses."""
    if num_frames < 1:
        raise UserError(f"--num_frames must be >= 1, got {num_frames}.")
    short = [s for s in sequences if s.labels.shape[0] < num_frames]
    if short:
        s = short[0]
        raise UserError(f"Test sequence {s.name} has {s.labels.shape[0]} poses in {s.label_dir}, but --num_frames "
                        f"asks for {num_frames}: lower --num_frames to at most "
                        f"{min(q.labels.shape[0] for q in sequences)} or add pose images.")
    return [dataclasses.replace(s, labels=s.labels[:num_frames],
                                truth=None if s.truth is None else s.truth[:num_frames]) for s in sequences]


def _mean(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are not None (a person metric of a sequence without a pose); None when
    there is none."""
    known = [v for v in values if v is not None]
    return float(sum(known) / len(known)) if known else None


def _nanmean(values: torch.Tensor) -> float | None:
    """The mean over the frames that are not NaN (frames with an empty pose label); None when all are."""
    mean = float(values.nanmean())
    return mean if math.isfinite(mean) else None


@dataclass(frozen=True)
class _Job:
    """One rollout to generate: a first frame, its poses, the truth (for the posterior) and its own seed."""

    first: torch.Tensor  # (3, H, W) uint8
    poses: torch.Tensor  # (N, 3, H, W) uint8
    truth: torch.Tensor | None  # (N, 3, H, W) uint8
    seed: int


def _roll_out(model: PoseVAE, jobs: list[_Job], *, device: torch.device, noise_scale: float, z_mode: str,
              posterior: bool = False, bar: tqdm | None = None) -> list[torch.Tensor]:
    """Every job's frames, uint8 (N, 3, H, W) on the CPU; jobs of equal length run together in batches.

    Each batch row draws its latents from its own generator (seeded by its job), so a job's frames are the
    same whatever else is in its batch, up to float rounding in the batched convolutions. ``posterior``:
    z = the posterior mean of the job's true frames (:func:`posevae.model.rollout.reconstruct`).
    """
    results: list[torch.Tensor | None] = [None] * len(jobs)
    by_length: dict[int, list[int]] = {}
    for i, job in enumerate(jobs):
        by_length.setdefault(job.poses.shape[0], []).append(i)
    for indices in by_length.values():
        for start in range(0, len(indices), MAX_BATCH_ROWS):
            part = indices[start:start + MAX_BATCH_ROWS]
            first = to_unit_float(torch.stack([jobs[i].first for i in part]), device)
            poses = to_unit_float(torch.stack([jobs[i].poses for i in part]), device)
            on_step = (lambda t, out, n=len(part): bar.update(n)) if bar is not None else None
            if posterior:
                truth = to_unit_float(torch.stack([jobs[i].truth for i in part]), device)
                frames = reconstruct(model, first, poses, truth, on_step=on_step)
            else:
                gens = [torch.Generator(device=device).manual_seed(jobs[i].seed) for i in part]
                frames = generate(model, first, poses, noise_scale=noise_scale, z_mode=z_mode, generator=gens,
                                  on_step=on_step)
            frames_u8 = to_uint8(frames).cpu()
            for row, i in enumerate(part):
                frames_u8[row, 0] = jobs[i].first  # the given frame, bit for bit
                results[i] = frames_u8[row]
    return results  # type: ignore[return-value]


SCORES = ("psnr", "ssim", "psnr_pose", "psnr_box")  # per frame, in the column order of samples.csv
# scores.csv; the person metrics at the end, so an older reader's column positions still hold
SCORE_COLUMNS = ["sequence", "frame", "psnr", "ssim", "baseline_psnr", "psnr_pose", "psnr_box"]


def _frame_scores(pred: torch.Tensor, truth: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """uint8 (..., N, 3, H, W), truth and labels (N, 3, H, W) -> the SCORES of frames 1..N-1, (..., N-1)
    each (pose / box PSNR NaN where a label is empty)."""
    p, t = pred[..., 1:, :, :, :].float().div(255.0), truth[1:].float().div(255.0)
    t = t.expand_as(p)
    scores = frame_and_person_psnr(p, t, labels[1:].float().div(255.0))
    return {name: ssim(p, t) if name == "ssim" else scores[name] for name in SCORES}


def _multi_sample_scores(name: str, samples: torch.Tensor, deterministic: torch.Tensor, posterior: torch.Tensor,
                         truth: torch.Tensor, labels: torch.Tensor) -> tuple[dict[str, Any], list[list[Any]]]:
    """SVG's protocol for one sequence: mean over the N samples, the best sample by mean SSIM, the
    deterministic rollout (z = the prior's mean) and the posterior's upper bound; per sequence and per frame.
    """
    scores = [_frame_scores(sample, truth, labels) for sample in samples]  # one at a time: SSIM in float64
    by_sample = {m: torch.stack([s[m] for s in scores]) for m in SCORES}  # (S, N-1) each
    best = int(by_sample["ssim"].mean(dim=1).argmax())
    curves = {
        "mean_of_n": {m: v.mean(dim=0) for m, v in by_sample.items()},  # an empty label: NaN in every sample
        "best_of_n": {m: v[best] for m, v in by_sample.items()},
        "deterministic": _frame_scores(deterministic, truth, labels),
        "posterior": _frame_scores(posterior, truth, labels),
    }
    entry: dict[str, Any] = {k: {m: _nanmean(v) for m, v in c.items()} for k, c in curves.items()}
    entry["best_of_n"]["sample"] = best
    # the best sample by SSIM need not have the best PSNR: the best PSNR of any sample, for reference
    s_psnr = by_sample["psnr"].mean(dim=1)
    entry["best_psnr_of_n"] = {"psnr": float(s_psnr.max()), "sample": int(s_psnr.argmax())}
    rows = [[name, k + 1, *(f"{float(c[m][k]):.6f}" for c in curves.values() for m in SCORES)]
            for k in range(by_sample["psnr"].shape[1])]
    return entry, rows


SAMPLE_COLUMNS = ["sequence", "frame"] + [f"{m}_{kind}" for kind in ("mean_of_n", "best_of_n", "deterministic",
                                                                       "posterior") for m in SCORES]


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def unequal_lengths(sequences: Sequence[TestSequence]) -> str | None:
    """None when every sequence has as many poses as the others; else a sentence naming the odd ones.

    The most common length is taken as the intended one (the course's 630), so one sequence with a
    missing pose image is named, not the four that are right.
    """
    lengths = [seq.labels.shape[0] for seq in sequences]
    if len(set(lengths)) <= 1:
        return None
    usual = Counter(lengths).most_common(1)[0][0]
    odd = [f"{seq.name} has {n} pose images in {seq.label_dir}" for seq, n in zip(sequences, lengths) if n != usual]
    return f"Test sequence {'; '.join(odd)}, where the others have {usual}"


def _check_options(z_mode: str, samples: int | None, noise: float, noise_option: float | None) -> None:
    if z_mode not in Z_MODES:
        raise UserError(f"--z_mode must be one of {', '.join(Z_MODES)}, got {z_mode!r}.")
    if samples is not None and samples < 1:
        raise UserError(f"--samples must be >= 1, got {samples}.")
    if samples is not None and samples > 1 and z_mode == "mean":
        raise UserError("--samples draws several latents per sequence, but --z_mode mean has only one: use "
                        "--z_mode sample with --samples (the deterministic rollout is scored as well).")
    if not (math.isfinite(noise) and noise >= 0):
        raise UserError(f"--noise_scale must be a finite number >= 0, got {noise_option}.")


def _load_sequences(DR: str | Path, H: int, W: int, cache_dir: str | Path | None, num_frames: int | None,
                    progress: bool) -> list[TestSequence]:
    sequences = load_test_sequences(DR, H, W, cache_dir=cache_dir, progress=progress)
    if num_frames is not None:
        sequences = _first_frames(sequences, num_frames)
    for seq in sequences:  # names become output paths (seq<name>/, pred_seq<name>.gif): never outside out
        if "/" in seq.name or os.sep in seq.name or ".." in seq.name or not seq.name:
            raise UserError(f"Test sequence name {seq.name!r} is not a plain folder name: rename its folder.")
    return sequences


@dataclass
class _Rollouts:
    """What was generated: n_samples rollouts per sequence (sequence-major), and with --samples the
    deterministic rollout of every sequence and the posterior bound of those with ground truth."""

    samples: list[torch.Tensor]
    n_samples: int
    deterministic: list[torch.Tensor] | None = None
    posterior: dict[int, torch.Tensor] | None = None  # by sequence position

    def of(self, position: int) -> list[torch.Tensor]:
        return self.samples[position * self.n_samples:(position + 1) * self.n_samples]


def _generate_all(model: PoseVAE, sequences: list[TestSequence], *, seed: int, n_samples: int, multi: bool,
                  device: torch.device, noise: float, z_mode: str, progress: bool) -> _Rollouts:
    jobs = [_Job(seq.first_frame, seq.labels, seq.truth, _sequence_seed(seed, seq.name, pos) + k * SAMPLE_SEED_STRIDE)
            for pos, seq in enumerate(sequences) for k in range(n_samples)]
    once = jobs[::n_samples]
    with_truth = [i for i, job in enumerate(once) if job.truth is not None] if multi else []
    steps = sum(job.poses.shape[0] - 1 for job in jobs)
    if multi:
        steps += sum(j.poses.shape[0] - 1 for j in once) + sum(once[i].poses.shape[0] - 1 for i in with_truth)
    with tqdm(total=steps, desc="generating", unit="frame", disable=not progress) as bar:
        rollouts = _Rollouts(_roll_out(model, jobs, device=device, noise_scale=noise, z_mode=z_mode, bar=bar),
                             n_samples)
        if multi:
            rollouts.deterministic = _roll_out(model, once, device=device, noise_scale=noise, z_mode="mean", bar=bar)
            bounds = _roll_out(model, [once[i] for i in with_truth], device=device, noise_scale=noise,
                               z_mode="mean", posterior=True, bar=bar)
            rollouts.posterior = dict(zip(with_truth, bounds))
    return rollouts


@dataclass
class _Scores:
    """Scores gathered over the sequences: per-frame rows of scores.csv and samples.csv, per-sequence entries."""

    per_sequence: dict[str, dict[str, Any]] = field(default_factory=dict)
    multi_per_sequence: dict[str, dict[str, Any]] = field(default_factory=dict)
    score_rows: list[list[Any]] = field(default_factory=list)
    sample_rows: list[list[Any]] = field(default_factory=list)


def _score_sequence(seq: TestSequence, pred: torch.Tensor, scores: _Scores) -> None:
    """PSNR / SSIM / baseline of one sequence against its truth; nulls when it has none (or only frame 0)."""
    entry: dict[str, Any] = {"frames": int(pred.shape[0]), "psnr": None, "ssim": None, "baseline_psnr": None,
                             "psnr_pose": None, "psnr_box": None}
    if seq.truth is not None and pred.shape[0] > 1:
        frame = _frame_scores(pred, seq.truth, seq.labels)
        truth = seq.truth[1:].float().div(255.0)  # frames 1..N-1; frame 0 is given
        base = psnr(seq.first_frame[None].float().div(255.0).expand_as(truth), truth)  # repeat frame 0
        columns = [frame["psnr"], frame["ssim"], base, frame["psnr_pose"], frame["psnr_box"]]  # SCORE_COLUMNS
        scores.score_rows += [[seq.name, k + 1, *(f"{v:.6f}" for v in values)]
                              for k, values in enumerate(zip(*(c.tolist() for c in columns)))]
        entry.update(psnr=float(frame["psnr"].mean()), ssim=float(frame["ssim"].mean()),
                     baseline_psnr=float(base.mean()), psnr_pose=_nanmean(frame["psnr_pose"]),
                     psnr_box=_nanmean(frame["psnr_box"]))
    scores.per_sequence[seq.name] = entry


def _write_sequence(out: Path, seq: TestSequence, position: int, rollouts: _Rollouts, scores: _Scores, *,
                    gif_scale: int, write_frames: bool) -> torch.Tensor:
    """Frames, GIFs (MP4) and scores of one sequence; returns its prediction (sample 0, what the CSV holds)."""
    seq_samples = rollouts.of(position)
    pred = seq_samples[0]  # (N, 3, H, W) uint8
    tag = f"seq{seq.name}"
    if write_frames:
        save_frames_png(pred, out / tag / "frames")
    save_gif(out / f"pred_{tag}.gif", pred, fps=GIF_FPS, scale=gif_scale)
    save_mp4(out / f"pred_{tag}.mp4", pred, fps=GIF_FPS, scale=gif_scale)
    _score_sequence(seq, pred, scores)
    scored = scores.per_sequence[seq.name]["psnr"] is not None
    if scored:
        save_gif(out / f"compare_{tag}.gif", side_by_side(pred, seq.truth), fps=GIF_FPS, scale=gif_scale)
    if rollouts.deterministic is not None:
        if scored:
            scores.multi_per_sequence[seq.name], rows = _multi_sample_scores(
                seq.name, torch.stack(seq_samples), rollouts.deterministic[position], rollouts.posterior[position],
                seq.truth, seq.labels)
            scores.sample_rows += rows
        grid = tile([seq.truth, *seq_samples] if seq.truth is not None else seq_samples)
        save_gif(out / f"samples_{tag}.gif", grid, fps=GIF_FPS,  # at most SAMPLES_GIF_WIDTH wide: a sane file size
                 scale=max(1, min(gif_scale, SAMPLES_GIF_WIDTH // grid.shape[-1])))
    return pred


def _multi_sample_summary(scores: _Scores, n_samples: int) -> dict[str, Any]:
    entries = scores.multi_per_sequence
    kinds = next(iter(entries.values())) if entries else {}
    return {
        "samples": n_samples,
        "best_of_n_by": "mean SSIM over the sequence (SVG)",
        "mean": {k: {m: _mean([e[k][m] for e in entries.values()]) for m in SCORES if m in kinds[k]}
                 for k in kinds},
        "sequences": entries,
    }


def _skipped_scores_reason(DR: str | Path, scores: _Scores) -> str | None:
    """Why some or all sequences have no scores (None when every one was scored)."""
    unscored = [name for name, e in scores.per_sequence.items() if e["psnr"] is None]
    if not unscored:
        return None
    gt_root = Path(DR) / "test" / "test_gt"
    if len(unscored) == len(scores.per_sequence):
        return (f"no ground truth: {gt_root} does not exist" if not gt_root.is_dir() else
                f"no ground truth for any sequence in {gt_root}")
    return f"no ground truth for sequence(s) {', '.join(unscored)} in {gt_root}"


def _replace_or_remove(path: Path, text: str | None) -> None:
    """Write ``text`` to ``path`` atomically, or remove ``path`` (a file of an earlier run would mislead)."""
    if text is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write_text(path, text)


def test_run(
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
    """Generate every test sequence of ``DR`` with checkpoint ``ckpt``; write the results under ``out``.

    ``ckpt``: a posevae ``.safetensors`` file, a run folder, or a course-template ``.ckpt`` (read as the
    template variant with noise scale 1.0, :mod:`posevae.model.template_ckpt`).

    ``noise_scale`` None uses the checkpoint's ``sample.noise_scale``; ``z_mode`` "mean" uses the prior's
    mean (0, or mu_p with a learned prior) instead of samples. Sequence i is drawn with its own
    ``torch.Generator`` seeded ``seed + i`` (i = the number of its folder), so the same seed gives the same
    frames on the same device. Sequences of equal length are generated together in batches.
    Frame 0 of every sequence is the given first frame, unchanged.

    Scores need ground truth (``DR/test/test_gt/<i>``), which the course does not hand out: sequences
    without it are generated and written, and their scores are null in summary.json (absent from
    scores.csv); ``summary["scores_skipped"]`` says why. PSNR and SSIM (frames 1..N-1, per frame as in the
    lab, then averaged) are computed on the uint8 frames that are written, round(x * 255), so recomputing
    them from submission.csv gives the same numbers. ``baseline_psnr`` is the PSNR of repeating the first
    frame: a model must beat it to have learned motion. ``psnr_pose`` / ``psnr_box``: the PSNR over each
    frame's pose region / person box (from its label; :mod:`posevae.metrics`), null like the others without
    ground truth, and skipping frames whose label is empty. ``num_frames`` (default: all) generates only the
    first ``num_frames`` frames of each sequence (frame 0 included); a sequence with fewer poses is an error
    naming its folder.

    submission.csv (the course's format) needs sequences of equal length: its ids run over every frame of
    every sequence, so one missing pose image would shift every later id. When the lengths differ, frames,
    GIFs and scores are still written, submission.csv is not, and a UserError naming the odd sequence is
    raised at the end, unless ``allow_unequal_lengths``.

    ``samples`` N (multi-sample evaluation, SVG's protocol): draws N rollouts per sequence in one batch
    (sample k seeded ``seed + i + k * 1000003``; sample 0 is the one the single run draws), and, for the
    sequences with ground truth, scores mean-of-N, best-of-N (the sample with the best mean SSIM), the
    deterministic rollout (z = the prior's mean) and the posterior's upper bound (z = the posterior mean of
    the true frames) per frame (``samples.csv``) and per sequence (``summary.json["multi_sample"]``).
    submission.csv, the GIFs and scores.csv stay those of sample 0, the configured choice; ``samples_seq<i>.gif``
    shows the truth (when there is one) and every sample side by side.
    ``cache_dir`` is passed to the data loader (default ``DR/.posevae_cache``); everything else is written
    under ``out``. Returns the summary (also written to ``out/summary.json``).
    """
    checkpoint = open_checkpoint(ckpt)  # a .safetensors, a run folder, or a course-template .ckpt
    cfg = checkpoint.config
    noise = cfg.sample.noise_scale if noise_scale is None else float(noise_scale)
    _check_options(z_mode, samples, noise, noise_scale)
    dev = resolve_device(device)
    model = model_from_checkpoint(checkpoint, ckpt, dev)
    H, W = cfg.model.frame_H, cfg.model.frame_W
    sequences = _load_sequences(DR, H, W, cache_dir, num_frames, progress)
    mismatch = unequal_lengths(sequences)
    out = prepare_out(Path(out))  # after the input checks, so bad input leaves no output folder behind

    multi, n_samples = samples is not None, samples or 1
    rollouts = _generate_all(model, sequences, seed=seed, n_samples=n_samples, multi=multi, device=dev,
                             noise=noise, z_mode=z_mode, progress=progress)
    scores = _Scores()
    predictions = [_write_sequence(out, seq, pos, rollouts, scores, gif_scale=gif_scale(H), write_frames=write_frames)
                   for pos, seq in enumerate(tqdm(sequences, desc="writing", unit="seq", disable=not progress))]
    submission = mismatch is None or allow_unequal_lengths
    if submission:
        write_submission(out / "submission.csv", predictions)
    else:  # a submission.csv of an earlier run would be mistaken for this one's
        (out / "submission.csv").unlink(missing_ok=True)

    scored = [e for e in scores.per_sequence.values() if e["psnr"] is not None]
    summary: dict[str, Any] = {
        "sequences": scores.per_sequence,
        "mean_psnr": _mean([e["psnr"] for e in scored]),  # mean over the scored sequences of their means
        "mean_ssim": _mean([e["ssim"] for e in scored]),
        "mean_baseline_psnr": _mean([e["baseline_psnr"] for e in scored]),
        "mean_psnr_pose": _mean([e["psnr_pose"] for e in scored]),  # over the sequences with a pose
        "mean_psnr_box": _mean([e["psnr_box"] for e in scored]),
        "scored_sequences": len(scored),
        "scores_skipped": _skipped_scores_reason(DR, scores),
        "submission": "submission.csv" if submission else None,
        "unequal_lengths": mismatch,
        "noise_scale": noise,
        "z_mode": z_mode,
        "prior": cfg.model.prior,
        "seed": seed,
        "checkpoint": str(Path(ckpt).resolve()),
        "dataset": str(Path(DR).resolve()),
        "device": str(dev),
    }
    if multi:
        summary["multi_sample"] = _multi_sample_summary(scores, n_samples)
    _replace_or_remove(out / "scores.csv", _csv(SCORE_COLUMNS, scores.score_rows) if scores.score_rows else None)
    _replace_or_remove(out / "samples.csv", _csv(SAMPLE_COLUMNS, scores.sample_rows) if scores.sample_rows else None)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    if not submission:
        raise UserError(f"{mismatch}: submission.csv was not written, because its ids would shift after that "
                        f"sequence (the course expects equal lengths, 630). The frames, GIFs and summary are in "
                        f"{out}. Restore the missing pose images, or pass --allow_unequal_lengths to write the "
                        "CSV anyway.")
    return summary


test_run.__test__ = False  # a library function, not a pytest test, despite its name
