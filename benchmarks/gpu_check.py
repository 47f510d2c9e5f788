"""The GPU check in one go: both presets' throughput (eager, bf16, compile), generation, a training epoch.

    python benchmarks/gpu_check.py [--out OUT] [--train-frames 4000]

Meant for a lent GPU machine with nothing to download: the data are synthetic (tests/synthetic.py, 32x64 PNGs
in the lab layout), the model is built from the repository. Prints, and writes to OUT/gpu_check.txt:

1. benchmarks/throughput.py --device cuda: training and generation frames/s, GFLOP/s against the measured
   matmul roof, peak memory, for the lab and fast presets in fp32 / channels_last / bf16;
2. benchmarks/generation.py --device cuda for both presets: a 630-frame rollout against 630 bare model steps,
   and the five test sequences one by one against batched;
3. one epoch of `posevae train` (lab preset, then fast, bf16 autocast, no DDP) on `--train-frames` frames with
   its wall-clock time and peak GPU memory (torch.cuda.max_memory_allocated);
4. benchmarks/throughput.py --device cuda --compile-only: the torch.compile configurations, last because
   compiling takes the longest and a lease may run out.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO), str(REPO / "benchmarks")]

import generation  # noqa: E402
import throughput  # noqa: E402
import torch  # noqa: E402

from posevae.config import MODEL_PRESETS, DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from posevae.training.loop import train  # noqa: E402
from tests.synthetic import make_lab_dataset  # noqa: E402


class Tee(io.TextIOBase):
    def __init__(self, *streams) -> None:
        self.streams = streams

    def write(self, s: str) -> int:
        for stream in self.streams:
            stream.write(s)
            stream.flush()
        return len(s)


def one_epoch(preset: str, data: Path, run: Path, batch: int) -> None:
    cfg = RunConfig(
        model=ModelConfig(**MODEL_PRESETS[preset]),
        data=DataConfig(DR=str(data), val_vi_len=630),
        train=TrainConfig(save_root=str(run), batch_size=batch, num_epoch=1, kl_anneal_type="Monotonic",
                          device="cuda", precision="bf16"),
    )
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    summary = train(cfg, progress=False)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20
    frames = summary["last"]
    print(f"train 1 epoch  {preset:5s} batch {batch:3d}: {seconds:7.1f} s for the epoch (incl. start-up and "
          f"the 630-frame validation), peak GPU memory {peak:8.0f} MiB, val PSNR "
          f"{float(frames.get('val_psnr', 'nan')):.2f} dB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu_check_out")
    ap.add_argument("--train-frames", type=int, default=4000)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible to torch; run it on a GPU machine.", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "gpu_check.txt", "w") as log, contextlib.redirect_stdout(Tee(sys.stdout, log)):
        print(f"# GPU check: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA "
              f"{torch.version.cuda}")
        throughput.main(["--device", "cuda"])
        for preset in ("fast", "lab"):
            for precision in ("fp32", "bf16"):
                generation.main(["--device", "cuda", "--preset", preset, "--precision", precision,
                                 "--repeats", "1"])
        with tempfile.TemporaryDirectory() as tmp:
            data = make_lab_dataset(Path(tmp) / "data", n_train=args.train_frames, n_val=630, n_test=1,
                                    H=32, W=64)
            for preset, batch in (("lab", 16), ("fast", 64)):
                one_epoch(preset, data, Path(tmp) / f"run_{preset}", batch)
        throughput.main(["--device", "cuda", "--compile-only"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
