"""The GPU check: the real `posevae train` loop on a course-size dataset, sequential against batched steps,
and `posevae test` on five 630-frame sequences. One run of a few minutes on one GPU; prints a table.

    python benchmarks/gpu_check.py [--out OUT] [--train-frames 23410] [--sequential-share 0.1]
    python benchmarks/gpu_check.py --device cpu --train-frames 400 --sequential-share 0.5 --video-frames 24 \
        --presets tiny   # a smoke check of this script on a CPU

Nothing to download: the data are synthetic (tests/synthetic.py, 32x64 PNGs in the lab layout: 23,410 training
frames as the course's, a 630-frame validation video, five 630-frame test sequences); the models are built
from the repository. For each preset (lab at batch 8, lr 1e-3; sharp with the person loss at batch 8, lr 2e-3)
and each step (--step sequential, batched), one epoch of `posevae.training.loop.train`, teacher forcing on
(tfr 1) and off (tfr 0), in fp32 and bf16. The sequential step trains on ``--sequential-share`` of the clips
(it is ~10x slower; its frames/s do not depend on how many clips there are), the batched one on all of them.

Columns: seconds for the epoch's training batches alone, predicted training frames/s (clips x 15 / those
seconds), seconds of the 630-frame validation, the epoch's wall clock with validation and start-up, val PSNR,
peak GPU memory. Last: `posevae test` (predict_test_split) of the five sequences with the batched lab
checkpoint, timed on its second call (the first warms up). Writes OUT/gpu_check.txt.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

import torch  # noqa: E402

import posevae.training.loop as loop  # noqa: E402
from posevae.config import MODEL_PRESETS, DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from posevae.evaluation.predict import predict_test_split  # noqa: E402
from posevae.run_folder import RunFolder  # noqa: E402
from tests.synthetic import make_lab_dataset  # noqa: E402

RECIPES: dict[str, dict[str, Any]] = {
    "lab": {"batch_size": 8, "lr": 1e-3},
    "sharp": {"batch_size": 8, "lr": 2e-3, "person_weight": 1.0},
    "tiny": {"batch_size": 2, "lr": 1e-3},  # the CPU smoke check of this script
}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class Tee(io.TextIOBase):
    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, s: str) -> int:
        for stream in self.streams:
            stream.write(s)
            stream.flush()
        return len(s)


class EpochClock:
    """Times the training batches and the validation of `train` (wrapping the loop's own functions)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.train_s = self.val_s = 0.0
        self.clips = 0

    @contextlib.contextmanager
    def installed(self):
        real_epoch, real_finish = loop.train_epoch, loop.finish_epoch

        def train_epoch(opt, loader, *args, **kwargs):
            sync(self.device)
            start = time.perf_counter()
            totals = real_epoch(opt, loader, *args, **kwargs)
            sync(self.device)
            self.train_s += time.perf_counter() - start
            self.clips += (totals.trained + totals.skipped) * args[1].train.batch_size  # args: plan, cfg, ...
            return totals

        def finish_epoch(*args, **kwargs):
            start = time.perf_counter()
            best = real_finish(*args, **kwargs)
            self.val_s += time.perf_counter() - start
            return best

        loop.train_epoch, loop.finish_epoch = train_epoch, finish_epoch
        try:
            yield self
        finally:
            loop.train_epoch, loop.finish_epoch = real_epoch, real_finish


def one_epoch(preset: str, step: str, tfr: float, precision: str, data: Path, run: Path,
              partial: float, device: str, video_frames: int) -> dict[str, Any]:
    cfg = RunConfig(
        model=ModelConfig(**MODEL_PRESETS[preset]),
        data=DataConfig(DR=str(data), val_vi_len=video_frames, partial=partial),
        train=TrainConfig(save_root=str(run), num_epoch=1, kl_anneal_type="None", tfr=tfr, device=device,
                          precision=precision, step=step, **RECIPES[preset]),
    )
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with EpochClock(device).installed() as clock:
        loop.train(cfg, progress=False)
    wall = time.perf_counter() - start
    row = RunFolder(run).read_metrics()[-1]
    return {"preset": preset, "step": step, "tf": "on" if tfr else "off", "precision": precision,
            "clips": clock.clips, "train_s": clock.train_s, "frames_s": clock.clips * 15 / clock.train_s,
            "val_s": clock.val_s, "wall_s": wall, "val_psnr": float(row["val_psnr"]),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")}


def print_row(r: dict[str, Any]) -> None:
    print(f"| {r['preset']:5s} | {r['step']:10s} | {r['tf']:3s} | {r['precision']:4s} | {r['clips']:5d} | "
          f"{r['train_s']:7.1f} | {r['frames_s']:8.0f} | {r['val_s']:5.1f} | {r['wall_s']:6.1f} | "
          f"{r['val_psnr']:6.2f} | {r['peak_gib']:5.2f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu_check_out")
    ap.add_argument("--train-frames", type=int, default=23410)
    ap.add_argument("--sequential-share", type=float, default=0.1)
    ap.add_argument("--presets", default="lab,sharp")
    ap.add_argument("--video-frames", type=int, default=630,
                    help="frames of the validation video and of each test sequence")
    ap.add_argument("--device", default="cuda", help="cuda; cpu only to smoke-check this script")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible to torch; run it on a GPU machine.", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "gpu_check.txt", "w") as log, contextlib.redirect_stdout(Tee(sys.stdout, log)), \
            tempfile.TemporaryDirectory() as tmp:
        name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU (smoke check)"
        print(f"# GPU check: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}")
        start = time.perf_counter()
        data = make_lab_dataset(Path(tmp) / "data", n_train=args.train_frames, n_val=args.video_frames,
                                n_test=5, test_len=args.video_frames, H=32, W=64)
        print(f"# synthetic dataset written in {time.perf_counter() - start:.0f} s")
        print("| preset | step | TF | prec | clips | train s | train f/s | val s | epoch s | val PSNR | "
              "peak GiB |")
        print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
        runs = 0
        for preset in args.presets.split(","):
            for step, tfr, precision in (("sequential", 1.0, "fp32"), ("batched", 1.0, "fp32"),
                                         ("batched", 1.0, "bf16"), ("sequential", 0.0, "fp32"),
                                         ("batched", 0.0, "fp32")):
                share = args.sequential_share if step == "sequential" else 1.0
                runs += 1
                print_row(one_epoch(preset, step, tfr, precision, data, Path(tmp) / f"run{runs}", share,
                                    args.device, args.video_frames))
        preset = args.presets.split(",")[0]
        run = Path(tmp) / "batched"
        one_epoch(preset, "batched", 1.0, "fp32", data, run, 1.0, args.device, args.video_frames)
        for attempt in ("warm-up", "timed"):
            sync(args.device)
            start = time.perf_counter()
            summary = predict_test_split(run, data, Path(tmp) / f"test_{attempt}", device=args.device,
                                         progress=False, write_frames=False)
            sync(args.device)
            seconds, test_psnr = time.perf_counter() - start, summary.get("mean_psnr", float("nan"))
            print(f"# posevae test of {preset}, 5 x {args.video_frames} frames ({attempt}): {seconds:.2f} s, "
                  f"test PSNR {test_psnr:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
