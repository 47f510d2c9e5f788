"""Scores of the test split, computed on the uint8 frames that are written: per frame (scores.csv), per sample
with ``--samples`` (samples.csv, SVG's protocol), per sequence and their means (summary.json)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from posevae.data.lab import TestSequence
from posevae.metrics import frame_and_person_psnr, psnr, ssim


def mean_of_known(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are not None (a person metric of a sequence without a pose); None when
    there is none."""
    known = [v for v in values if v is not None]
    return float(sum(known) / len(known)) if known else None


def nanmean_or_none(values: torch.Tensor) -> float | None:
    """The mean over the frames that are not NaN (frames with an empty pose label); None when all are."""
    mean = float(values.nanmean())
    return mean if math.isfinite(mean) else None


SCORES = ("psnr", "ssim", "psnr_pose", "psnr_box")  # per frame, in the column order of samples.csv


# scores.csv; the person metrics at the end, so an older reader's column positions still hold
SCORE_COLUMNS = ["sequence", "frame", "psnr", "ssim", "baseline_psnr", "psnr_pose", "psnr_box"]


def frame_scores(pred: torch.Tensor, truth: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """uint8 (..., N, 3, H, W), truth and labels (N, 3, H, W) -> the SCORES of frames 1..N-1, (..., N-1)
    each (pose / box PSNR NaN where a label is empty)."""
    p, t = pred[..., 1:, :, :, :].float().div(255.0), truth[1:].float().div(255.0)
    t = t.expand_as(p)
    scores = frame_and_person_psnr(p, t, labels[1:].float().div(255.0))
    return {name: ssim(p, t) if name == "ssim" else scores[name] for name in SCORES}


def multi_sample_scores(
    name: str, samples: torch.Tensor, deterministic: torch.Tensor, posterior: torch.Tensor,
    truth: torch.Tensor, labels: torch.Tensor,
) -> tuple[dict[str, Any], list[list[Any]]]:
    """SVG's protocol for one sequence: mean over the N samples, the best sample by mean SSIM, the
    deterministic rollout (z = the prior's mean) and the posterior's upper bound; per sequence and per frame.
    """
    scores = [frame_scores(sample, truth, labels) for sample in samples]  # one at a time: SSIM in float64
    by_sample = {m: torch.stack([s[m] for s in scores]) for m in SCORES}  # (S, N-1) each
    best = int(by_sample["ssim"].mean(dim=1).argmax())
    curves = {
        "mean_of_n": {m: v.mean(dim=0) for m, v in by_sample.items()},  # an empty label: NaN in every sample
        "best_of_n": {m: v[best] for m, v in by_sample.items()},
        "deterministic": frame_scores(deterministic, truth, labels),
        "posterior": frame_scores(posterior, truth, labels),
    }
    entry: dict[str, Any] = {k: {m: nanmean_or_none(v) for m, v in c.items()} for k, c in curves.items()}
    entry["best_of_n"]["sample"] = best
    # the best sample by SSIM need not have the best PSNR: the best PSNR of any sample, for reference
    s_psnr = by_sample["psnr"].mean(dim=1)
    entry["best_psnr_of_n"] = {"psnr": float(s_psnr.max()), "sample": int(s_psnr.argmax())}
    rows = [[name, k + 1, *(f"{float(c[m][k]):.6f}" for c in curves.values() for m in SCORES)]
            for k in range(by_sample["psnr"].shape[1])]
    return entry, rows


SAMPLE_KINDS = ("mean_of_n", "best_of_n", "deterministic", "posterior")
SAMPLE_COLUMNS = ["sequence", "frame"] + [f"{m}_{kind}" for kind in SAMPLE_KINDS for m in SCORES]


def csv_text(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


@dataclass
class Scores:
    """Scores gathered over the sequences: per-frame rows of scores.csv and samples.csv, per-sequence
    entries."""

    per_sequence: dict[str, dict[str, Any]] = field(default_factory=dict)
    multi_per_sequence: dict[str, dict[str, Any]] = field(default_factory=dict)
    score_rows: list[list[Any]] = field(default_factory=list)
    sample_rows: list[list[Any]] = field(default_factory=list)


def score_sequence(seq: TestSequence, pred: torch.Tensor, scores: Scores) -> None:
    """PSNR / SSIM / baseline of one sequence against its truth; nulls when it has none (or only frame 0)."""
    entry: dict[str, Any] = {"frames": int(pred.shape[0]), "psnr": None, "ssim": None, "baseline_psnr": None,
                             "psnr_pose": None, "psnr_box": None}
    if seq.truth is not None and pred.shape[0] > 1:
        frame = frame_scores(pred, seq.truth, seq.labels)
        truth = seq.truth[1:].float().div(255.0)  # frames 1..N-1; frame 0 is given
        base = psnr(seq.first_frame[None].float().div(255.0).expand_as(truth), truth)  # repeat frame 0
        columns = [frame["psnr"], frame["ssim"], base, frame["psnr_pose"], frame["psnr_box"]]  # SCORE_COLUMNS
        scores.score_rows += [[seq.name, k + 1, *(f"{v:.6f}" for v in values)]
                              for k, values in enumerate(zip(*(c.tolist() for c in columns), strict=True))]
        entry.update(psnr=float(frame["psnr"].mean()), ssim=float(frame["ssim"].mean()),
                     baseline_psnr=float(base.mean()), psnr_pose=nanmean_or_none(frame["psnr_pose"]),
                     psnr_box=nanmean_or_none(frame["psnr_box"]))
    scores.per_sequence[seq.name] = entry


def multi_sample_summary(scores: Scores, n_samples: int) -> dict[str, Any]:
    entries = scores.multi_per_sequence
    kinds = next(iter(entries.values())) if entries else {}
    return {
        "samples": n_samples,
        "best_of_n_by": "mean SSIM over the sequence (SVG)",
        "mean": {k: {m: mean_of_known([e[k][m] for e in entries.values()]) for m in SCORES if m in kinds[k]}
                 for k in kinds},
        "sequences": entries,
    }


def skipped_scores_reason(DR: str | Path, scores: Scores) -> str | None:
    """Why some or all sequences have no scores (None when every one was scored)."""
    unscored = [name for name, e in scores.per_sequence.items() if e["psnr"] is None]
    if not unscored:
        return None
    gt_root = Path(DR) / "test" / "test_gt"
    if len(unscored) == len(scores.per_sequence):
        return (f"no ground truth: {gt_root} does not exist" if not gt_root.is_dir() else
                f"no ground truth for any sequence in {gt_root}")
    return f"no ground truth for sequence(s) {', '.join(unscored)} in {gt_root}"


def summarise(DR: str | Path, scores: Scores) -> dict[str, Any]:
    """summary.json's scores: per sequence, their means over the scored sequences, and why any were
    skipped."""
    scored = [e for e in scores.per_sequence.values() if e["psnr"] is not None]
    return {
        "sequences": scores.per_sequence,
        # mean over the scored sequences of their means
        "mean_psnr": mean_of_known([e["psnr"] for e in scored]),
        "mean_ssim": mean_of_known([e["ssim"] for e in scored]),
        "mean_baseline_psnr": mean_of_known([e["baseline_psnr"] for e in scored]),
        "mean_psnr_pose": mean_of_known([e["psnr_pose"] for e in scored]),  # over the sequences with a pose
        "mean_psnr_box": mean_of_known([e["psnr_box"] for e in scored]),
        "scored_sequences": len(scored),
        "scores_skipped": skipped_scores_reason(DR, scores),
    }
