"""Where a finished epoch is written: metrics.csv (every row, rewritten atomically), TensorBoard, Weights &
Biases (only with --log_wandb), and one progress line on stderr."""

from __future__ import annotations

import re
import sys
import warnings
from types import TracebackType
from typing import Any

from tqdm.auto import tqdm

from posevae.config import RunConfig
from posevae.errors import UserError
from posevae.run_folder import RunFolder


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


class _NullWriter:
    """Stands in for TensorBoard's SummaryWriter when it cannot be imported."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def _open_wandb(run: RunFolder, cfg: RunConfig) -> Any:
    """Weights & Biases, only when asked (--log_wandb); one W&B run per run folder, resumed with it."""
    try:
        import wandb
    except ImportError:
        raise UserError("--log_wandb needs the wandb package: `pip install wandb` (or `pip install "
                        "posevae[wandb]`), or drop --log_wandb; metrics.csv and TensorBoard log without "
                        "it.") from None
    run_id = re.sub(r"[^A-Za-z0-9_-]", "-", str(run.root.resolve()))[-64:]
    return wandb.init(project="posevae", name=run.root.name, id=run_id, resume="allow", dir=str(run.root),
                      config=cfg.to_dict())


_warned_no_tensorboard = False  # the missing-TensorBoard warning is given once per process


def _open_tensorboard(run: RunFolder, start_epoch: int) -> Any:
    """TensorBoard's SummaryWriter for RUN/tb/, or (with a warning, once) a writer that drops everything."""
    global _warned_no_tensorboard
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:  # tensorboard is a dependency, but a broken install should not stop training
        if not _warned_no_tensorboard:
            _warned_no_tensorboard = True
            warnings.warn(f"TensorBoard cannot be imported ({err}): training goes on without "
                          f"{run.tensorboard}; metrics.csv has every value. Reinstall it with `pip install "
                          "tensorboard`.",
                          UserWarning, stacklevel=2)
        return _NullWriter()
    return SummaryWriter(str(run.tensorboard), purge_step=start_epoch if start_epoch else None)


class EpochLog:
    """The rows of metrics.csv so far, and the loggers each new row also goes to (rank 0 only)."""

    def __init__(self, run: RunFolder, cfg: RunConfig, start_epoch: int, rows: list[dict[str, Any]]) -> None:
        self.run = run
        self.rows = rows  # formatted as in metrics.csv
        self.writer = _open_tensorboard(run, start_epoch)
        self.wandb_run = _open_wandb(run, cfg) if cfg.train.log_wandb else None

    def write(self, row: dict[str, Any]) -> None:
        """Append one epoch's row (0-based ``epoch`` and its values) to metrics.csv, TensorBoard and W&B."""
        self.rows.append({k: _fmt(v) for k, v in row.items()})
        self.run.write_metrics(self.rows)
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(key, float(value), row["epoch"])
        self.writer.flush()
        if self.wandb_run is not None:
            self.wandb_run.log({k: float(v) for k, v in row.items() if k != "epoch"}, step=row["epoch"])

    def close(self) -> None:
        self.writer.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()

    def __enter__(self) -> EpochLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def print_epoch(row: dict[str, Any], num_epoch: int, teacher_forcing: bool, is_best: bool) -> None:
    """One line per epoch on stderr: the losses, teacher forcing, validation PSNR, time."""
    tqdm.write(f"epoch {row['epoch'] + 1}/{num_epoch}: loss {row['loss']:.4g} (mse {row['mse']:.4g}, "
               f"kl {row['kl']:.4g}, beta {row['beta']:.3f}), tf {'on' if teacher_forcing else 'off'} "
               f"(ratio {row['tfr']:.2f}), val PSNR {row['val_psnr']:.2f} dB "
               f"(pose {row['val_psnr_pose']:.2f}, box {row['val_psnr_box']:.2f})"
               f"{' (best)' if is_best else ''}, {row['seconds']:.1f} s", file=sys.stderr)
