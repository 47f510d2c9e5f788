"""Training and generation throughput of posevae, against a naive course-template baseline and a matmul roof.

    python benchmarks/throughput.py [--device cpu|cuda] [--quick] [--compile] [--force-bf16]

Every configuration runs in this one process, one after the other, on the same synthetic data (seeded), so
the numbers of one run are comparable with each other. Nothing else should run on the machine meanwhile:
two torch processes sharing a small CPU slow each other down far more than 2x.

Columns:
  train f/s   predicted training frames per second: B clips of T=16 frames (B*(T-1) predictions per step),
              forward + backward + gradient clipping + Adam step, timed after warm-up; the sequential step
              (benchmarks/training_step.py compares it with the batched one).
  gen f/s     generated frames per second: one rollout with z from the prior (batch 1), timed after warm-up;
              630 frames (120 with --quick, and 120 for the lab preset on CPU unless --lab-gen-frames).
  peak mem    CUDA: torch.cuda.max_memory_allocated over the configuration. CPU: the process's peak RSS
              (VmHWM) over the configuration, reset before it through /proc/self/clear_refs; it includes
              the Python interpreter, torch and the data (a few hundred MiB of floor).
  GFLOP/s     achieved: frames/s times the FLOPs of one frame, counted by torch.utils.flop_counter on one
              training step (forward + backward, batch 1) or one prior step (forward, batch 1). The
              counter sees convolutions and matmuls only, so element-wise work is not in the numbers.
  roof %      achieved GFLOP/s over the measured matmul GFLOP/s of the same dtype (fp32 or bf16).
  x base      ratio of the configuration's frames/s to the naive baseline's.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import gc
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from posevae.config import MODEL_PRESETS, ModelConfig
from posevae.device import autocast_for, fast_bf16_available
from posevae.losses import kl_to_standard_normal, reconstruction_mse
from posevae.model.rollout import generate, to_unit_float
from posevae.model.vae import PoseVAE
from posevae.training.step import train_clip

H, W, T = 32, 64, 16


# ---------------------------------------------------------------------------------------------- utilities
def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # give freed heap back to the OS
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError):  # Linux: "5" resets the peak RSS (VmHWM) of the process
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # fallback: the peak of the whole process so far

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_roof(device: torch.device, dtype: torch.dtype, n: int = 2048, min_seconds: float = 1.0) -> float:
    """GFLOP/s of an n x n x n matmul in ``dtype`` (best of several timed batches)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):
        a @ b
    sync(device)
    best, total, reps = 0.0, 0.0, 1
    while total < min_seconds:
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        dt = time.perf_counter() - start
        total += dt
        best = max(best, 2 * n**3 * reps / dt / 1e9)
        reps = min(reps * 2, 64)
    return best


def synthetic_video(n_frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth moving blobs as frames and thin bars as poses, uint8 (N, H, W, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    frames = np.empty((n_frames, H, W, 3), np.uint8)
    poses = np.zeros((n_frames, H, W, 3), np.uint8)
    phase = rng.uniform(0, 2 * np.pi, 3)
    for i in range(n_frames):
        cx = W / 2 + W / 4 * np.sin(0.05 * i + phase[0])
        cy = H / 2 + H / 4 * np.cos(0.07 * i + phase[1])
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 60.0)
        for c in range(3):
            shade = 0.5 + 0.5 * np.sin(phase[2] + c)
            frames[i, :, :, c] = np.clip(255 * (0.3 + 0.6 * blob * shade), 0, 255)
        x0 = int(np.clip(cx, 2, W - 3))
        poses[i, :, x0 - 1:x0 + 2, 0] = 255
        poses[i, int(np.clip(cy, 2, H - 3)), :, 1] = 255
    frames = np.clip(frames.astype(np.int16) + rng.integers(-8, 9, frames.shape), 0, 255).astype(np.uint8)
    return frames, poses


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 numpy -> (..., 3, H, W) uint8 torch."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(images, -1, -3)))


# --------------------------------------------------------------------------- the naive (course) baseline
class PngClipDataset(Dataset):
    """The course template's way: every __getitem__ opens and decodes T PNG frames and T PNG poses."""

    def __init__(self, root: Path, n_frames: int, clip_len: int) -> None:
        self.root, self.clip_len = root, clip_len
        self.n_clips = n_frames // clip_len

    def __len__(self) -> int:
        return self.n_clips

    def _load(self, kind: str, i: int) -> torch.Tensor:
        img = Image.open(self.root / kind / f"{i:05d}.png").convert("RGB")
        return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = index * self.clip_len
        ids = range(start, start + self.clip_len)
        frames = torch.stack([self._load("img", i) for i in ids])
        return frames, torch.stack([self._load("label", i) for i in ids])


def write_pngs(root: Path, frames: np.ndarray, poses: np.ndarray) -> None:
    for kind, images in (("img", frames), ("label", poses)):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            Image.fromarray(image).save(root / kind / f"{i:05d}.png")


def baseline_train_step(model, optimizer, frames, poses, beta: float = 1.0) -> None:
    """One batch as the template does it: sum the loss over the clip, one backward, one optimizer step."""
    optimizer.zero_grad()
    loss = frames.new_zeros(())
    prev = frames[:, 0]
    for t in range(1, frames.shape[1]):
        out = model(prev, poses[:, t], frames[:, t])
        loss = loss + reconstruction_mse(out.frame, frames[:, t]) + beta * kl_to_standard_normal(
            out.mu, out.logvar, "batch")
        prev = frames[:, t]  # teacher forcing
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def baseline_generate(model, dataset_root: Path, n_frames: int, device: torch.device) -> torch.Tensor:
    """The template's test loop: decode the pose PNGs, then step the model under no_grad in fp32."""
    load = PngClipDataset(dataset_root, n_frames, 1)._load
    poses = torch.stack([load("label", i) for i in range(n_frames)])[None].to(device)
    prev = load("img", 0)[None].to(device)
    out_frames = [prev]
    model.eval()
    with torch.no_grad():
        for t in range(1, n_frames):
            prev = model(prev, poses[:, t], noise_scale=0.5).frame
            out_frames.append(prev)
    model.train()
    return torch.stack(out_frames, 1)


# ----------------------------------------------------------------------------------------- measurements
@dataclass
class Result:
    name: str
    train_fps: float
    gen_fps: float
    peak_mib: float
    train_gflops: float  # achieved
    gen_gflops: float
    roof: float  # GFLOP/s of the matching matmul
    batch: int
    train_s: float
    gen_s: float


def count_flops(model, device, autocast) -> tuple[float, float]:
    """FLOPs of one training prediction (forward + backward, batch 1) and of one generated frame."""
    seed_all(0)
    frames = torch.rand(1, 2, 3, H, W, device=device)
    poses = torch.rand(1, 2, 3, H, W, device=device)
    with FlopCounterMode(display=False) as counter:
        train_clip(model, frames, poses, beta=1.0, teacher_forcing=True, autocast=autocast, step="sequential")
    train_flops = counter.get_total_flops()
    model.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as counter:
        generate(model, frames[:, 0], poses, autocast=autocast)
    return float(train_flops), float(counter.get_total_flops())


def run_config(name, model, *, device, batch, iters, warmup, gen_frames, data, autocast, compile_model,
               memory_format, roof, flops) -> Result:
    frames_u8, poses_u8 = data
    seed_all(1)
    model = model.to(device, memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    step_model = torch.compile(model) if compile_model else model
    n_clips = frames_u8.shape[0] // T
    clips_f = frames_u8[: n_clips * T].view(n_clips, T, 3, H, W)
    clips_p = poses_u8[: n_clips * T].view(n_clips, T, 3, H, W)
    order = torch.randperm(n_clips, generator=torch.Generator().manual_seed(1))

    def batch_at(k: int):
        idx = order[(torch.arange(batch) + k * batch) % n_clips]
        f = to_unit_float(clips_f[idx], device)
        p = to_unit_float(clips_p[idx], device)
        if memory_format is torch.channels_last:  # (B, T, C, H, W): the per-step slices are channels-last
            f = f.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
            p = p.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
        return f, p

    def step(k: int) -> None:
        f, p = batch_at(k)
        optimizer.zero_grad(set_to_none=True)
        # the sequential step, as these rows always measured (benchmarks/training_step.py compares the two)
        train_clip(step_model, f, p, beta=1.0, teacher_forcing=True, autocast=autocast, step="sequential")
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    reset_peak_memory(device)
    for k in range(warmup):
        step(k)
    sync(device)
    start = time.perf_counter()
    for k in range(iters):
        step(warmup + k)
    sync(device)
    train_s = time.perf_counter() - start
    train_fps = iters * batch * (T - 1) / train_s

    gen_poses = to_unit_float(poses_u8[:gen_frames][None], device)
    first = to_unit_float(frames_u8[:1], device)
    if memory_format is torch.channels_last:
        gen_poses = gen_poses.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
        first = first.contiguous(memory_format=torch.channels_last)
    gen = torch.Generator(device=device).manual_seed(1)
    generate(step_model, first, gen_poses[:, :4], autocast=autocast, generator=gen)  # warm-up
    sync(device)
    start = time.perf_counter()
    generate(step_model, first, gen_poses, autocast=autocast, generator=gen)
    sync(device)
    gen_s = time.perf_counter() - start
    gen_fps = (gen_frames - 1) / gen_s
    peak = peak_memory_mib(device)
    return Result(name, train_fps, gen_fps, peak, train_fps * flops[0] / 1e9, gen_fps * flops[1] / 1e9, roof,
                  batch, train_s, gen_s)


def run_baseline(model, *, device, batch, iters, warmup, gen_frames, root: Path, n_frames: int, roof, flops):
    seed_all(1)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loader = DataLoader(PngClipDataset(root, n_frames, T), batch_size=batch, shuffle=True, drop_last=True,
                        num_workers=0, generator=torch.Generator().manual_seed(1))

    def batches():
        while True:
            yield from loader

    it = batches()
    reset_peak_memory(device)
    for _ in range(warmup):
        f, p = next(it)
        baseline_train_step(model, optimizer, f.to(device), p.to(device))
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        f, p = next(it)  # decoding is part of the template's step (num_workers=0)
        baseline_train_step(model, optimizer, f.to(device), p.to(device))
    sync(device)
    train_s = time.perf_counter() - start
    train_fps = iters * batch * (T - 1) / train_s
    baseline_generate(model, root, 4, device)  # warm-up
    sync(device)
    start = time.perf_counter()
    baseline_generate(model, root, gen_frames, device)
    sync(device)
    gen_s = time.perf_counter() - start
    gen_fps = (gen_frames - 1) / gen_s
    peak = peak_memory_mib(device)
    return Result("baseline (template, lab, PIL, fp32)", train_fps, gen_fps, peak, train_fps * flops[0] / 1e9,
                  gen_fps * flops[1] / 1e9, roof, batch, train_s, gen_s)


def cpu_model_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="120-frame rollouts and one timed iteration")
    ap.add_argument("--compile", action="store_true", help="add torch.compile configurations (meant for GPU)")
    ap.add_argument("--compile-only", action="store_true",
                    help="only the baseline and the torch.compile configurations (implies --compile)")
    ap.add_argument("--force-bf16", action="store_true", help="run bf16 even where it is not fast")
    ap.add_argument("--presets", default="lab,fast", help="comma-separated presets (default lab,fast; also "
                                                          "sharp)")
    ap.add_argument("--lab-batch", type=int, default=None, help="default 2 on CPU, 16 on CUDA")
    ap.add_argument("--fast-batch", type=int, default=None,
                    help="batch of the fast, sharp and tiny presets: default 8 on CPU, 64 on CUDA")
    ap.add_argument("--iters", type=int, default=None,
                    help="timed iterations (default 2 lab / 3 fast on CPU)")
    ap.add_argument("--gen-frames", type=int, default=None, help="frames of the rollout (default 630)")
    ap.add_argument("--lab-gen-frames", type=int, default=None,
                    help="frames of the lab-preset rollouts (default: --gen-frames on CUDA, 120 on CPU)")
    args = ap.parse_args(argv)

    args.compile = args.compile or args.compile_only
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available.", file=sys.stderr)
        return 2
    torch.set_flush_denormal(True)
    cuda = device.type == "cuda"
    gen_frames = args.gen_frames or (120 if args.quick else 630)
    # the lab preset generates at ~4-30 frames/s on a small CPU: 120 frames keep the default run short
    lab_gen_frames = args.lab_gen_frames or (gen_frames if cuda else min(gen_frames, 120))
    warmup = 1 if not cuda else 3
    if args.compile:
        warmup += 2
    fast_batch = args.fast_batch or (64 if cuda else 8)
    fast_iters = args.iters or (1 if args.quick else (10 if cuda else 3))
    batches = {"lab": args.lab_batch or (16 if cuda else 2), "fast": fast_batch, "tiny": fast_batch,
               "sharp": fast_batch}
    iters_of = {"lab": args.iters or (1 if args.quick else (10 if cuda else 2)), "fast": fast_iters,
                "tiny": fast_iters, "sharp": fast_iters}
    bf16 = fast_bf16_available(device) or args.force_bf16

    started = time.perf_counter()
    print(f"# posevae throughput  {datetime.datetime.now():%Y-%m-%d %H:%M}")
    dev_name = torch.cuda.get_device_name(device) if cuda else cpu_model_name()
    print(f"# device {device} ({dev_name}); torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"cpus {os.cpu_count()}; fast bf16 {fast_bf16_available(device)}; "
          f"python {platform.python_version()}")
    roof32 = matmul_roof(device, torch.float32)
    roof16 = matmul_roof(device, torch.bfloat16) if bf16 else float("nan")
    print(f"# matmul roof 2048^3: fp32 {roof32:.0f} GFLOP/s, bf16 {roof16:.0f} GFLOP/s")

    n_frames = max(gen_frames, lab_gen_frames, 4 * T * max(batches.values()))
    frames_np, poses_np = synthetic_video(n_frames, seed=0)
    frames_u8, poses_u8 = to_tensor(frames_np), to_tensor(poses_np)
    results: list[Result] = []
    fp32 = lambda: autocast_for(device, "fp32")  # noqa: E731
    bf16_ctx = lambda: autocast_for(device, "bf16")  # noqa: E731

    with tempfile.TemporaryDirectory(prefix="posevae-bench-") as tmp:
        root = Path(tmp)
        write_pngs(root, frames_np, poses_np)
        lab_cfg = ModelConfig(frame_H=H, frame_W=W, **MODEL_PRESETS["lab"])
        seed_all(0)
        flops_cache: dict[tuple[str, str], tuple[float, float]] = {}

        def flops_for(preset: str, precision: str) -> tuple[float, float]:
            key = (preset, precision)
            if key not in flops_cache:
                seed_all(0)
                m = PoseVAE(ModelConfig(frame_H=H, frame_W=W, **MODEL_PRESETS[preset])).to(device)
                flops_cache[key] = count_flops(m, device, bf16_ctx if precision == "bf16" else fp32)
            return flops_cache[key]

        seed_all(0)
        res = run_baseline(PoseVAE(lab_cfg), device=device, batch=batches["lab"], iters=iters_of["lab"],
                           warmup=warmup, gen_frames=lab_gen_frames, root=root, n_frames=n_frames,
                           roof=roof32,
                           flops=flops_for("lab", "fp32"))
        results.append(res)
        print(f"  done {res.name}: {res.train_fps:.2f} / {res.gen_fps:.2f} f/s "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

        for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
            variants = []
            if not args.compile_only:
                variants += [("fp32", torch.contiguous_format, "fp32", False),
                             ("fp32+CL", torch.channels_last, "fp32", False)]
                if bf16:
                    variants.append(("bf16+CL", torch.channels_last, "bf16", False))
            if args.compile:
                variants.append(("fp32+CL+compile", torch.channels_last, "fp32", True))
                if bf16:
                    variants.append(("bf16+CL+compile", torch.channels_last, "bf16", True))
            for label, fmt, precision, comp in variants:
                seed_all(0)
                model = PoseVAE(ModelConfig(frame_H=H, frame_W=W, **MODEL_PRESETS[preset]))
                res = run_config(
                    f"{preset} {label}", model, device=device, batch=batches[preset], iters=iters_of[preset],
                    warmup=warmup, gen_frames=lab_gen_frames if preset == "lab" else gen_frames,
                    data=(frames_u8, poses_u8), autocast=bf16_ctx if precision == "bf16" else fp32,
                    compile_model=comp, memory_format=fmt, roof=roof16 if precision == "bf16" else roof32,
                    flops=flops_for(preset, precision))
                results.append(res)
                print(f"  done {res.name}: {res.train_fps:.2f} / {res.gen_fps:.2f} f/s "
                      f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
                del model
                if cuda:
                    torch.cuda.empty_cache()

    base = results[0]
    mem_label = "peak alloc MiB" if cuda else "peak RSS MiB"
    header = (f"| {'configuration':<36} | {'B':>3} | {'train f/s':>9} | {'x base':>6} | {'GFLOP/s':>7} | "
              f"{'roof %':>6} | {'gen f/s':>8} | {'x base':>6} | {'GFLOP/s':>7} | {'roof %':>6} | "
              f"{mem_label:>14} |")
    print()
    print(header)
    print("|" + "|".join("-" * len(c) for c in header[1:-1].split("|")) + "|")
    for r in results:
        print(f"| {r.name:<36} | {r.batch:>3} | {r.train_fps:>9.2f} | {r.train_fps / base.train_fps:>5.2f}x "
              f"| {r.train_gflops:>7.1f} | {100 * r.train_gflops / r.roof:>5.1f}% | {r.gen_fps:>8.2f} "
              f"| {r.gen_fps / base.gen_fps:>5.2f}x | {r.gen_gflops:>7.1f} "
              f"| {100 * r.gen_gflops / r.roof:>5.1f}% | {r.peak_mib:>14.0f} |")
    print()
    for (preset, precision), (tf, gf) in sorted(flops_cache.items()):
        print(f"# FLOPs {preset} ({precision}): {tf / 1e9:.3f} GFLOP per trained frame (fwd+bwd), "
              f"{gf / 1e9:.3f} GFLOP per generated frame")
    print(f"# training: T={T} at {H}x{W}, {warmup} warm-up + timed iterations (lab {iters_of['lab']}, "
          f"fast {iters_of['fast']}); generation: {lab_gen_frames}-frame (lab) / {gen_frames}-frame "
          "rollouts, batch 1")
    print(f"# total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
