"""Quality for the same wall-clock budget: train each preset (or variant) on the demo data, validate, test.

    python benchmarks/quality.py --data data/demo --out runs/quality --minutes 8
    python benchmarks/quality.py --runs fast sharp 'sharp-warp:preset=sharp,warp=true' --minutes 8
    # smoke check on a tiny dataset: --minutes 0.2 --partial 0.02 --val_vi_len 32

Every run uses the demo's recipe (posevae.jobs.demo: DEMO_TRAIN, DEMO_DATA, seed 1, --precision auto) with its
own model preset and options. A run is ``name`` (a preset) or ``name:field=value,...`` with ModelConfig or
TrainConfig fields and ``preset=`` (default: the name), e.g. ``sharp-pw0:preset=sharp,person_weight=0``.

The budget (``--minutes``) is turned into a number of epochs per run, so every run completes its schedules
(cosine learning rate, KL cycles, teacher-forcing decay) instead of being cut off mid-schedule:

1. a short timing ("probe") of the run's own model on the real data: one warm-up batch, then
   ``--probe_batches`` timed training batches (forward and backward with the step ``--step`` runs under
   teacher forcing, clipping, Adam step, as ``posevae.training.loop``), and a validation (two rollouts, as
   every epoch) of the first 32 validation frames, scaled to ``--val_vi_len``;
2. epochs = round(minutes * 60 / (batches per epoch * seconds per batch + validation seconds)), at least 1:
   the epoch count whose estimated time is nearest the budget (a run may end up to half an epoch over or
   under it; the table reports the minutes each really trained);
3. the KL schedule: the demo's (no annealing, beta = 1); a run that sets ``kl_anneal_type=Cyclical`` gets
   min(2, epochs // 3) cycles (at least 1), or beta = 1 for a single epoch. Teacher forcing and everything
   else are the demo's (the person loss included: ``person_weight=0`` gives the lab's loss).

Nothing is chosen on test data: ``posevae.training.loop`` keeps the checkpoint with the best validation PSNR
and that checkpoint is validated again (z from the prior, the run's noise scale and sample seed: the rollout
the training validated) and tested with ``posevae.evaluation.predict.predict_test_split``. Reported per run:
whole-frame PSNR and SSIM and, where ``posevae.metrics`` has them, pose-region and person-box PSNR (validation
and test); parameters, forward GFLOP per generated frame (batch 1, FlopCounterMode), epochs, training minutes
(wall clock of ``train``, validation included) and training frames/s (predicted frames / those seconds), and
the probe's training frames/s (training steps only). The markdown table goes to stdout and OUT/quality.md,
every number to OUT/quality.json; OUT/plan.json keeps the epochs chosen, so running the command again resumes
the unfinished runs with the same plan. Nothing else should run on the machine meanwhile.

Held to AVX2 (``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``) an AMX machine measures what a CPU
without AMX does: ``--precision auto`` then trains in fp32 (docs/quality.md, "The demo without AMX"); the
header says which kernels and precision ran.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import shlex
import subprocess
import sys
import time
import typing
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from posevae import metrics
from posevae.config import MODEL_PRESETS, ModelConfig, RunConfig, TrainConfig
from posevae.data.lab import ClipDataset, Video, load_test_sequences, load_val_video, load_video
from posevae.device import autocast_for, resolve_device, training_precision
from posevae.evaluation.predict import predict_test_split
from posevae.files import atomic_write_text
from posevae.jobs.compare import _convert, train_or_resume
from posevae.jobs.demo import DEMO_DATA, demo_config
from posevae.model.checkpoint import load_checkpoint, model_from_checkpoint
from posevae.model.rollout import generate, to_unit_float
from posevae.model.vae import PoseVAE, count_parameters
from posevae.run_folder import RunFolder
from posevae.training.loop import TrainingDiverged
from posevae.training.setup import build_optimizer
from posevae.training.step import batched_step_frames, step_for, train_clip
from posevae.training.validation import evaluate_video

# The main rows of docs/quality.md: the lab model and the fast preset with the lab's loss and KL schedule (the
# demo before), the fast preset with the demo's recipe, the sharp preset without and with the person loss
# (the demo: the recipe's defaults).
DEFAULT_RUNS = (
    "lab:person_weight=0,kl_anneal_type=Cyclical",
    "fast:person_weight=0,kl_anneal_type=Cyclical",
    "fast-kl1-pw1:preset=fast",
    "sharp-nowarp-kl1:preset=sharp,person_weight=0",
    "sharp-nowarp-kl1-pw1:preset=sharp",
)
PROBE_VAL_FRAMES = 32  # validation frames timed by the probe (then scaled to --val_vi_len)
# if posevae.metrics has them
PERSON_METRICS = {"pose_region_psnr": "pose PSNR", "person_box_psnr": "box PSNR"}


@dataclasses.dataclass
class RunSpec:
    name: str
    preset: str
    model: dict[str, Any]  # ModelConfig overrides beyond the preset
    train: dict[str, Any]  # TrainConfig overrides beyond the demo recipe


def parse_run(entry: str) -> RunSpec:
    """'name' or 'name:field=value,...' (ModelConfig / TrainConfig fields, preset=) -> RunSpec."""
    name, _, rest = entry.partition(":")
    model_hints, train_hints = typing.get_type_hints(ModelConfig), typing.get_type_hints(TrainConfig)
    spec = RunSpec(name.strip(), name.strip(), {}, {})
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, _, value = item.partition("=")
        key, value = key.strip().replace("-", "_"), value.strip()
        if key == "preset":
            spec.preset = value
        elif key in model_hints:
            spec.model[key] = _convert(model_hints[key], value, f"{entry}: {key}")
        elif key in train_hints and key not in ("save_root", "num_epoch"):
            spec.train[key] = _convert(train_hints[key], value, f"{entry}: {key}")
        else:
            raise SystemExit(f"run {entry!r}: {item!r} is not preset=, a ModelConfig or a TrainConfig field")
    if spec.preset not in MODEL_PRESETS:
        raise SystemExit(f"run {entry!r}: unknown preset {spec.preset!r} (one of {', '.join(MODEL_PRESETS)})")
    return spec


def base_config(spec: RunSpec, args: argparse.Namespace, num_epoch: int) -> RunConfig:
    """The demo's config with the run's model, options, epochs and the KL cycles fitted to them."""
    train = {"kl_anneal_cycle": max(1, min(2, num_epoch // 3)), **spec.train}
    if num_epoch == 1:  # no cycle fits one epoch
        train["kl_anneal_type"] = "None"
    cfg = demo_config(Path(args.data), Path(args.out) / "runs" / spec.name, args.device,
                      partial=args.partial, val_vi_len=args.val_vi_len, num_epoch=num_epoch, **train)
    model = ModelConfig(**{**MODEL_PRESETS[spec.preset], "frame_H": args.frame_H, "frame_W": args.frame_W,
                           **spec.model})
    return dataclasses.replace(cfg, model=model)


def _time_batches(model: PoseVAE, cfg: RunConfig, clips: ClipDataset, device: torch.device, n: int) -> float:
    """Seconds per training batch: one warm-up batch, then the mean of ``n`` timed ones."""
    t = cfg.train
    optimizer, _ = build_optimizer(model, cfg)
    precision = training_precision(device, t.precision)
    seconds = []
    for k in range(n + 1):
        ids = [(k * t.batch_size + i) % len(clips) for i in range(t.batch_size)]
        frames = to_unit_float(torch.stack([clips[i][0] for i in ids]), device)  # (B, T, 3, H, W)
        poses = to_unit_float(torch.stack([clips[i][1] for i in ids]), device)
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        train_clip(model, frames, poses, beta=0.5, teacher_forcing=True, kl_norm=t.kl_norm,
                   autocast=lambda: autocast_for(device, precision), gdl_weight=t.gdl_weight,
                   person_weight=t.person_weight, step=step_for(t.step, device, True),
                   frames_per_forward=batched_step_frames(model, device))
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - started)
    return sum(seconds[1:]) / n


def probe(cfg: RunConfig, n_batches: int, progress: bool) -> dict[str, float]:
    """Estimated seconds of one epoch of ``cfg`` (training + validation), from a short timing."""
    d, t, m = cfg.data, cfg.train, cfg.model
    device = resolve_device(t.device)
    clips = ClipDataset(load_video(d.DR, "train", m.frame_H, m.frame_W, d.cache_dir, progress=progress),
                        d.train_vi_len, d.stride, d.partial)
    val = load_val_video(d.DR, m.frame_H, m.frame_W, min(d.val_vi_len, PROBE_VAL_FRAMES), d.cache_dir,
                         progress)
    torch.manual_seed(t.seed)
    memory_format = torch.channels_last if t.channels_last else torch.preserve_format
    model = PoseVAE(m).to(device, memory_format=memory_format)
    flush = torch.set_flush_denormal(True)  # as posevae.training.loop
    try:
        batch_s = _time_batches(model.train(), cfg, clips, device, n_batches)
        started = time.perf_counter()
        # in fp32, as posevae.training.loop validates whatever --precision says
        evaluate_video(model, val, device=device, beta=0.5, noise_scale=cfg.sample.noise_scale, seed=0)
        val_s = (time.perf_counter() - started) * (d.val_vi_len - 1) / (len(val) - 1)
    finally:
        if flush:  # process-wide CPU state: give it back, as posevae.training.loop does
            torch.set_flush_denormal(False)
    batches = len(clips) // t.batch_size
    frames_per_batch = t.batch_size * (d.train_vi_len - 1)
    return {"batches": batches, "batch_s": batch_s, "val_s": val_s, "epoch_s": batches * batch_s + val_s,
            "probe_train_fps": frames_per_batch / batch_s}


def plan_epochs(spec: RunSpec, args: argparse.Namespace, plan: dict[str, Any]) -> dict[str, Any]:
    """The run's entry of OUT/plan.json: the probe's timing and the epochs that fill the budget."""
    budget = {k: getattr(args, k) for k in ("minutes", "partial", "val_vi_len", "frame_H", "frame_W")}
    if spec.name in plan:
        planned = {k: plan[spec.name].get(k) for k in budget}
        if planned != budget:
            raise SystemExit(f"{args.out}/plan.json planned {spec.name} for {planned}, not {budget}: use "
                             "another --out (or the same options to resume).")
        return plan[spec.name]
    timing = probe(base_config(spec, args, 1), args.probe_batches, not args.quiet)
    epochs = max(1, round(args.minutes * 60 / timing["epoch_s"]))
    plan[spec.name] = {**timing, "epochs": epochs, **budget}
    atomic_write_text(Path(args.out) / "plan.json", json.dumps(plan, indent=2) + "\n")
    return plan[spec.name]


def frame_scores(pred: torch.Tensor, truth: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Frames 1..N-1 of one sequence, (N, 3, H, W) floats in [0, 1] -> mean PSNR, SSIM (and person
    metrics)."""
    pred, truth, labels = pred[1:], truth[1:], labels[1:]  # frame 0 is given
    scores = {"PSNR": metrics.psnr(pred, truth).mean().item(),
              "SSIM": metrics.ssim(pred, truth).mean().item()}
    for fn, column in PERSON_METRICS.items():
        if hasattr(metrics, fn):
            scores[column] = getattr(metrics, fn)(pred, truth, labels).nanmean().item()  # NaN: empty label
    return scores


def validate(best: Path, cfg: RunConfig, progress: bool) -> dict[str, float]:
    """Scores of the best checkpoint's validation rollout (the one training validated: same seed, noise and
    fp32 arithmetic)."""
    device = resolve_device(cfg.train.device)
    model = model_from_checkpoint(load_checkpoint(best), best, device)
    d, m = cfg.data, cfg.model
    video: Video = load_val_video(d.DR, m.frame_H, m.frame_W, d.val_vi_len, d.cache_dir, progress)
    frames = to_unit_float(video.frames[None], device)  # (1, T, 3, H, W)
    poses = to_unit_float(video.labels[None], device)
    gen = torch.Generator(device).manual_seed(cfg.sample.sample_seed)
    pred = generate(model, frames[:, 0], poses, noise_scale=cfg.sample.noise_scale, generator=gen)  # fp32
    return frame_scores(pred[0].cpu(), frames[0].cpu(), poses[0].cpu())


def read_pngs(folder: Path, n: int) -> torch.Tensor:
    """folder/0.png .. folder/{n-1}.png -> (n, 3, H, W) floats in [0, 1]."""
    arrays = [np.asarray(Image.open(folder / f"{k}.png").convert("RGB")) for k in range(n)]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0


def test(best: Path, cfg: RunConfig, out: Path, progress: bool) -> dict[str, float]:
    """``posevae test`` of the best checkpoint into ``out``; mean over sequences of each sequence's scores.

    Scored on the uint8 frames written (as predict_test_split scores them); needs DR/test/test_gt (the demo
    has it).
    """
    summary = out / "summary.json"
    if not (summary.is_file() and summary.stat().st_mtime >= best.stat().st_mtime):  # reuse a finished test
        predict_test_split(best, cfg.data.DR, out, seed=cfg.sample.sample_seed, device=cfg.train.device,
                           progress=progress, cache_dir=cfg.data.cache_dir)
    per_sequence = []
    d, m = cfg.data, cfg.model
    for seq in load_test_sequences(d.DR, m.frame_H, m.frame_W, d.cache_dir, progress):
        if seq.truth is None:
            continue
        n = seq.labels.shape[0]
        pred = read_pngs(out / f"seq{seq.name}" / "frames", n)
        per_sequence.append(frame_scores(pred, seq.truth.float() / 255.0, seq.labels.float() / 255.0))
    return {k: float(np.mean([s[k] for s in per_sequence])) for k in per_sequence[0]} if per_sequence else {}


def model_cost(model_cfg: ModelConfig) -> dict[str, float]:
    """Parameters and forward GFLOP of one generation step (z from the prior), batch 1."""
    model = PoseVAE(model_cfg).eval()
    x = torch.rand(1, 3, model_cfg.frame_H, model_cfg.frame_W)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, x)
    return {"params": count_parameters(model), "gflop": counter.get_total_flops() / 1e9}


def run_one(spec: RunSpec, args: argparse.Namespace, plan: dict[str, Any]) -> dict[str, Any]:
    """Probe (or read the plan), train (or resume) for the planned epochs, validate and test the best."""
    planned = plan_epochs(spec, args, plan)
    cfg = base_config(spec, args, planned["epochs"])
    progress = not args.quiet
    started = time.perf_counter()
    run = RunFolder(cfg.train.save_root)
    try:
        train_or_resume(cfg, progress=progress)
    except TrainingDiverged as err:  # a recipe that diverges is a result too: say so, go on with the others
        return {"name": spec.name, "preset": spec.preset, "options": {**spec.model, **spec.train},
                **model_cost(cfg.model), "epochs": planned["epochs"], "train_min": None, "train_fps": None,
                "probe_train_fps": planned["probe_train_fps"], "val": {}, "test": {},
                "diverged": f"epoch {len(run.read_metrics()) + 1}: {str(err).split('. ')[0]}"}
    wall_s = time.perf_counter() - started
    epoch_s = [float(r["seconds"]) for r in run.read_metrics()]
    train_s = sum(epoch_s) or wall_s  # the epochs' own seconds: right after a resume too
    trained_frames = (planned["epochs"] * planned["batches"] * cfg.train.batch_size
                      * (cfg.data.train_vi_len - 1))
    return {
        "name": spec.name, "preset": spec.preset, "options": {**spec.model, **spec.train},
        **model_cost(cfg.model), "epochs": planned["epochs"], "train_min": train_s / 60,
        "train_fps": trained_frames / train_s, "probe_train_fps": planned["probe_train_fps"],
        "val": validate(run.best, cfg, progress), "test": test(run.best, cfg, run.root / "test", progress),
    }


def machine_lines(argv: list[str]) -> list[str]:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                    if line.startswith("Model name")),
                   "unknown")
    except OSError:
        cpu = "unknown (no lscpu)"
    return [f"# posevae quality for equal wall-clock, {datetime.datetime.now():%Y-%m-%d %H:%M}",
            (f"# CPU {cpu}; torch {torch.__version__}; {torch.get_num_threads()} threads; "
             f"CUDA {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}"),
            (f"# kernels: ATen {torch.backends.cpu.get_cpu_capability()}, oneDNN max ISA "
             f"{os.environ.get('ONEDNN_MAX_CPU_ISA') or 'unset'}; --precision auto trains in "
             f"{training_precision(torch.device('cpu'), 'auto')} on the CPU"),
            f"# python benchmarks/quality.py {shlex.join(argv)}"]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def table(results: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: one per run; score columns only for the metrics every run has."""
    scored = [r for r in results if not r.get("diverged")]
    scores = [k for k in ("PSNR", *PERSON_METRICS.values(), "SSIM") if all(k in r["val"] for r in scored)]
    digits = {"SSIM": 4}
    head = ["run", "options", "params", "GFLOP/frame", "epochs", "train min", "train f/s", "probe f/s",
            *[f"val {k}" for k in scores], *[f"test {k}" for k in scores]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        options = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "-"
        cells = [r["name"], f"{r['preset']}: {options}", f"{r['params']:,}", f"{r['gflop']:.3f}",
                 str(r["epochs"]),
                 _fmt(r["train_min"], 1), _fmt(r["train_fps"], 1), _fmt(r["probe_train_fps"], 1),
                 *[_fmt(r["val"].get(k), digits.get(k, 2)) for k in scores],
                 *[_fmt(r["test"].get(k), digits.get(k, 2)) for k in scores]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [f"\n{r['name']} diverged in {r['diverged']}; no scores." for r in results if r.get("diverged")]
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data", default="data/demo", help="dataset root (`posevae data demo --out data/demo`)")
    ap.add_argument("--out", default="runs/quality", help="runs/<name>/, plan.json, quality.md, quality.json")
    ap.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS), metavar="RUN",
                    help="'name' (a preset) or 'name:preset=P,field=value,...' (ModelConfig / TrainConfig "
                         "fields)")
    ap.add_argument("--minutes", type=float, default=8.0, help="training budget of each run (see the doc)")
    ap.add_argument("--partial", type=float, default=DEMO_DATA["partial"],
                    help="fraction of the training frames")
    ap.add_argument("--val_vi_len", type=int, default=DEMO_DATA["val_vi_len"], help="validation frames")
    ap.add_argument("--frame_H", type=int, default=32)
    ap.add_argument("--frame_W", type=int, default=64)
    ap.add_argument("--probe_batches", type=int, default=3, help="timed training batches of the probe")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    specs = [parse_run(entry) for entry in args.runs]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan_file = out / "plan.json"
    plan = json.loads(plan_file.read_text()) if plan_file.is_file() else {}
    header = machine_lines(argv)
    print("\n".join(header), flush=True)
    started = time.perf_counter()
    results = []
    for i, spec in enumerate(specs, start=1):
        print(f"[{i}/{len(specs)}] {spec.name}", file=sys.stderr, flush=True)
        results.append(run_one(spec, args, plan))
    lines = [*header, f"# {args.minutes} min per run; total {(time.perf_counter() - started) / 60:.1f} min",
             "", *table(results)]
    atomic_write_text(out / "quality.md", "\n".join(lines) + "\n")
    atomic_write_text(out / "quality.json", json.dumps({"header": header, "runs": results}, indent=2) + "\n")
    print("\n".join(lines[len(header):]))
    print(f"wrote {out / 'quality.md'}, {out / 'quality.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
