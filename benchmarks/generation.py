"""Generation speed: how close a 630-frame rollout gets to 630 bare model steps, and what batching buys.

    python benchmarks/generation.py [--device cpu|cuda] [--preset fast|lab] [--frames 630] [--precision
    fp32|bf16]

Three measurements, in this one process, on the same random weights and poses (nothing else should run):

  bare steps     the model's forward called frames-1 times in a loop on its own output (eval, inference
                 mode): the floor any generation loop pays.
  rollout        posevae.model.rollout.generate over the same frames: the bare steps plus the loop's
  bookkeeping
                 (stacking the frames, the per-step latent draw from a generator). Reported as overhead
                 over the bare steps.
  test, 5 seqs   five sequences of `frames` frames one after another (batch 1, what `posevae test` did
                 before) against all five in one batch (what it does now), and 5 x 8 samples in batches
                 of 16 rows (`posevae test --samples 8`); frames per second over all generated frames.
"""

from __future__ import annotations

import argparse
import datetime
import time
from contextlib import nullcontext

import torch
from throughput import cpu_model_name  # benchmarks/ is on sys.path when run as a script

from posevae.config import MODEL_PRESETS, ModelConfig
from posevae.device import autocast_for
from posevae.model.rollout import evaluating, generate
from posevae.model.vae import PoseVAE


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int = 2) -> float:
    """Best of ``repeats`` wall-clock seconds of fn() after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    choices=["cpu", "cuda"])
    ap.add_argument("--preset", default="fast", choices=["fast", "lab"])
    ap.add_argument("--frames", type=int, default=630)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    torch.set_flush_denormal(True)
    cfg = ModelConfig(**MODEL_PRESETS[args.preset])
    model = PoseVAE(cfg).to(device, memory_format=torch.channels_last)
    poses = torch.rand(5, args.frames, 3, cfg.frame_H, cfg.frame_W, device=device)
    first = torch.rand(5, 3, cfg.frame_H, cfg.frame_W, device=device)
    autocast = (lambda: autocast_for(device, "bf16")) if args.precision == "bf16" else None
    n = args.frames - 1

    def bare_steps() -> None:
        with evaluating(model), torch.inference_mode(), autocast() if autocast else nullcontext():
            prev = first[:1]
            for t in range(1, args.frames):
                prev = model(prev, poses[:1, t], noise_scale=0.5).frame

    def rollout_one() -> None:
        generate(model, first[:1], poses[:1], autocast=autocast,
                 generator=torch.Generator(device).manual_seed(1))

    def one_by_one() -> None:
        for i in range(5):
            generate(model, first[i:i + 1], poses[i:i + 1], autocast=autocast,
                     generator=[torch.Generator(device).manual_seed(i)])

    def batched() -> None:
        generate(model, first, poses, autocast=autocast,
                 generator=[torch.Generator(device).manual_seed(i) for i in range(5)])

    def samples_8() -> None:
        rows_first, rows_poses = first.repeat_interleave(8, 0), poses.repeat_interleave(8, 0)
        for start in range(0, 40, 16):
            generate(model, rows_first[start:start + 16], rows_poses[start:start + 16], autocast=autocast,
                     generator=[torch.Generator(device).manual_seed(k)
                                for k in range(start, min(start + 16, 40))])

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model_name()
    print(f"# posevae generation benchmark, {datetime.date.today()}, {name}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, preset {args.preset} ({cfg.frame_H}x{cfg.frame_W}), "
          f"{args.precision}, channels_last, best of {args.repeats}")
    bare = timed(bare_steps, device, args.repeats)
    roll = timed(rollout_one, device, args.repeats)
    print(f"bare model steps      {n:5d} frames  {bare:7.2f} s  {n / bare:8.1f} frames/s")
    print(f"rollout (generate)    {n:5d} frames  {roll:7.2f} s  {n / roll:8.1f} frames/s  "
          f"overhead {100 * (roll / bare - 1):+.1f}% over the bare steps")
    seq = timed(one_by_one, device, args.repeats)
    bat = timed(batched, device, args.repeats)
    s8 = timed(samples_8, device, 1)
    print(f"test, 5 seqs, 1 by 1  {5 * n:5d} frames  {seq:7.2f} s  {5 * n / seq:8.1f} frames/s")
    print(f"test, 5 seqs, batched {5 * n:5d} frames  {bat:7.2f} s  {5 * n / bat:8.1f} frames/s  "
          f"x{seq / bat:.2f} over 1 by 1")
    print(f"test --samples 8      {40 * n:5d} frames  {s8:7.2f} s  {40 * n / s8:8.1f} frames/s  "
          f"(5 x 8 rollouts, 16 rows a batch)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
