"""The training step, sequential against batched: frames/s and peak memory of the demo's and the lab's model.

    python benchmarks/training_step.py [--device cpu|cuda] [--rounds 2] [--batches 3]

For each configuration (the demo's: sharp preset, batch 8, person loss; the lab's: lab preset, batch 2, the
course's batch size; both at 32x64, clips of T = 16 frames), each precision (fp32, and bf16 where
``--precision auto`` would pick it) and teacher forcing on and off, it times ``--batches`` training batches of
each step (``posevae.training.step.train_batch``: forward, backward, gradient clipping, Adam, as the training
loop runs them, channels_last, denormals flushed), the two steps alternating for ``--rounds`` rounds in this
one process; the table gives the best round of each and the batched step's speed over the sequential one's
(the baseline, measured in the same run). ``auto`` is the step --step auto runs for that row. On a CPU the
batched step takes the frames per forward that ``batched_step_frames`` allows (shown in the header).

Peak memory: CUDA's max_memory_allocated, or on a CPU the process's peak RSS (VmHWM, reset before each
measurement; it includes the interpreter, torch and the data, a few hundred MiB of floor), over one batch
of each step, teacher forcing on and off. Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from throughput import cpu_model_name, peak_memory_mib, reset_peak_memory, sync  # noqa: E402

from posevae.config import MODEL_PRESETS, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from posevae.device import autocast_for, resolve_device, training_precision  # noqa: E402
from posevae.model.vae import PoseVAE  # noqa: E402
from posevae.training.setup import build_optimizer  # noqa: E402
from posevae.training.step import Optimisation, batched_step_frames, step_for, train_batch  # noqa: E402

CONFIGS = {"demo": ("sharp", 8, 1.0), "lab": ("lab", 2, 0.0)}  # preset, batch size, person weight
T, H, W = 16, 32, 64


def optimisation(preset: str, device: torch.device) -> Optimisation:
    torch.manual_seed(1)
    model = PoseVAE(ModelConfig(**MODEL_PRESETS[preset])).to(device)
    model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = build_optimizer(model, RunConfig(train=TrainConfig(kl_anneal_type="None")))
    return Optimisation(model, model, optimizer, scheduler, batched_step_frames(model, device))


def clips(batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random frames and sparse pose images, as real clips would be (B, T, 3, H, W) in [0, 1]."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.rand(batch, T, 3, H, W, generator=generator)
    poses = (torch.rand(batch, T, 3, H, W, generator=generator) > 0.9).float()
    return frames.to(device), poses.to(device)


def run_batches(opt: Optimisation, data, step: str, teacher_forcing: bool, person_weight: float,
                precision: str, device: torch.device, batches: int) -> float:
    """Seconds for ``batches`` training batches."""
    sync(device)
    start = time.perf_counter()
    for _ in range(batches):
        stats = train_batch(opt, *data, beta=1.0, teacher_forcing=teacher_forcing, kl_norm="elements",
                            grad_clip=1.0, gdl_weight=0.0, device=device, person_weight=person_weight,
                            step=step, autocast=lambda: autocast_for(device, precision))
        assert stats is not None, "a non-finite step in the benchmark"
    sync(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--configs", default="demo,lab")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    torch.set_flush_denormal(True)
    precisions = ["fp32"] + (["bf16"] if training_precision(device, "auto") == "bf16" else [])
    name = torch.cuda.get_device_name() if device.type == "cuda" else cpu_model_name()
    print(f"# {name}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"kernels {torch.backends.cpu.get_cpu_capability()}, --precision auto: "
          f"{training_precision(device, 'auto')}")
    print("| config | precision | TF | sequential f/s | batched f/s | batched / sequential | auto runs |")
    print("|---|---|---|---:|---:|---:|---|")
    for config in args.configs.split(","):
        preset, batch, person_weight = CONFIGS[config]
        opt, data = optimisation(preset, device), clips(batch, device)
        print(f"# {config}: {preset}, batch {batch}, frames per forward of the batched step: "
              f"{opt.step_frames or batch * (T - 1)}", flush=True)
        for precision in precisions:
            for teacher_forcing in (True, False):
                best = {"sequential": float("inf"), "batched": float("inf")}
                # one warm-up batch, then the steps alternate
                run_batches(opt, data, "batched", teacher_forcing, person_weight, precision, device, 1)
                for _ in range(args.rounds):
                    for step in best:
                        seconds = run_batches(opt, data, step, teacher_forcing, person_weight, precision,
                                              device, args.batches)
                        best[step] = min(best[step], seconds)
                fps = {step: args.batches * batch * (T - 1) / s for step, s in best.items()}
                print(f"| {config} | {precision} | {'on' if teacher_forcing else 'off'} | "
                      f"{fps['sequential']:.1f} | {fps['batched']:.1f} | "
                      f"{fps['batched'] / fps['sequential']:.2f}x | "
                      f"{step_for('auto', device, teacher_forcing)} |", flush=True)
        for step in ("sequential", "batched"):
            peaks = []
            for teacher_forcing in (True, False):
                reset_peak_memory(device)
                run_batches(opt, data, step, teacher_forcing, person_weight, precisions[-1], device, 1)
                peaks.append(peak_memory_mib(device))
            print(f"# {config}: peak memory of one {step} batch ({precisions[-1]}, T = {T}): "
                  f"{max(peaks):.0f} MiB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
