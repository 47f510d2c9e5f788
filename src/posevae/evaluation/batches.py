"""Many rollouts at once: each test sequence (and each of its samples) is a job with its own seed, and jobs of
equal length are rolled out together in batches of at most MAX_BATCH_ROWS rows.

Each batch row draws its latents from its own ``torch.Generator``, so a job's frames do not depend on what
else is in its batch (up to float rounding in the batched convolutions), nor on the order of the sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from posevae.config import SEED_STRIDE
from posevae.data.lab import TestSequence
from posevae.media import to_uint8
from posevae.model.rollout import generate, reconstruct, to_unit_float
from posevae.model.vae import PoseVAE

MAX_BATCH_ROWS = 16  # rollouts generated together (sequences x samples); bounds the memory of the frames




def sequence_seed(seed: int, name: str, position: int) -> int:
    """The seed of one sequence: seed + its number (the folder name, e.g. 0..4), else + its position.

    Each sequence has its own generator, so its frames do not depend on which other sequences are
    generated, or in which order.
    """
    return seed + (int(name) if name.isdigit() else position)


@dataclass(frozen=True)
class RolloutJob:
    """One rollout to generate: a first frame, its poses, the truth (for the posterior) and its own seed."""

    first: torch.Tensor  # (3, H, W) uint8
    poses: torch.Tensor  # (N, 3, H, W) uint8
    truth: torch.Tensor | None  # (N, 3, H, W) uint8
    seed: int

    def true_frames(self) -> torch.Tensor:
        if self.truth is None:
            raise ValueError("the posterior bound of a rollout needs its true frames")
        return self.truth


def roll_out_jobs(model: PoseVAE, jobs: list[RolloutJob], *, device: torch.device, noise_scale: float,
                  z_mode: str, posterior: bool = False, bar: tqdm | None = None) -> list[torch.Tensor]:
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
            rows = len(part)
            on_step = (lambda t, out, rows=rows: bar.update(rows)) if bar is not None else None
            if posterior:
                truth = to_unit_float(torch.stack([jobs[i].true_frames() for i in part]), device)
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


@dataclass
class Rollouts:
    """What was generated: n_samples rollouts per sequence (sequence-major), and with --samples the
    deterministic rollout of every sequence and the posterior bound of those with ground truth."""

    samples: list[torch.Tensor]
    n_samples: int
    deterministic: list[torch.Tensor] | None = None
    posterior: dict[int, torch.Tensor] | None = None  # by sequence position

    def of(self, position: int) -> list[torch.Tensor]:
        return self.samples[position * self.n_samples:(position + 1) * self.n_samples]


def generate_rollouts(model: PoseVAE, sequences: list[TestSequence], *, seed: int, n_samples: int,
                      multi: bool, device: torch.device, noise: float, z_mode: str,
                      progress: bool) -> Rollouts:
    """The rollouts of every sequence: ``n_samples`` each, and with ``multi`` (``--samples``) also the
    deterministic one (z = the prior's mean) and, where there is ground truth, the posterior bound."""
    jobs = [RolloutJob(seq.first_frame, seq.labels, seq.truth,
                       sequence_seed(seed, seq.name, pos) + k * SEED_STRIDE)
            for pos, seq in enumerate(sequences) for k in range(n_samples)]
    once = jobs[::n_samples]
    with_truth = [i for i, job in enumerate(once) if job.truth is not None] if multi else []
    steps = sum(job.poses.shape[0] - 1 for job in jobs)
    if multi:
        steps += sum(j.poses.shape[0] - 1 for j in once) + sum(once[i].poses.shape[0] - 1 for i in with_truth)
    with tqdm(total=steps, desc="generating", unit="frame", disable=not progress) as bar:
        rollouts = Rollouts(roll_out_jobs(model, jobs, device=device, noise_scale=noise, z_mode=z_mode,
                                          bar=bar), n_samples)
        if multi:
            rollouts.deterministic = roll_out_jobs(model, once, device=device, noise_scale=noise,
                                                   z_mode="mean", bar=bar)
            bounds = roll_out_jobs(model, [once[i] for i in with_truth], device=device, noise_scale=noise,
                                   z_mode="mean", posterior=True, bar=bar)
            rollouts.posterior = dict(zip(with_truth, bounds, strict=True))
    return rollouts
