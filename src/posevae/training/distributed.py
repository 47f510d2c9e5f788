"""Multi-process training with torch.distributed, on when launched by torchrun (WORLD_SIZE > 1).

One process per GPU (NCCL) or per CPU worker (gloo). Every rank trains on its share of the clips
(DistributedSampler) and DistributedDataParallel averages the gradients; rank 0 alone validates, logs and
writes the run folder. Without torchrun's environment every helper here is a no-op and training runs in a
single process exactly as before. See docs/distributed.md.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist

from posevae.device import resolve_device
from posevae.errors import UserError

# Debug/test hook: when set, every rank appends a hash of its parameters after each optimizer step to
# <dir>/rank{r}.txt (tests/test_distributed.py checks that the ranks agree).
WEIGHT_HASH_DIR_ENV = "POSEVAE_DEBUG_WEIGHT_HASH_DIR"


def requested() -> bool:
    """True when this process was launched by torchrun (or similar) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def enabled() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if enabled() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if enabled() else 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that logs and writes files."""
    return rank() == 0


def barrier() -> None:
    if enabled():
        dist.barrier()


@contextmanager
def process_group(device_name: str) -> Iterator[torch.device]:
    """Resolve --device and, under torchrun, join the process group for the duration; yields the device.

    NCCL with cuda:LOCAL_RANK when the device is a GPU, gloo otherwise.
    """
    device = resolve_device(device_name)
    if not requested():
        yield device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise UserError(f"Distributed training runs on CUDA GPUs (NCCL) or CPUs (gloo), not on {device}: "
                        "use --device cuda or cpu.")
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        yield device
    finally:
        dist.destroy_process_group()


@contextmanager
def fail_together() -> Iterator[None]:
    """A UserError raised in the block on any rank is raised on every rank (none is left waiting)."""
    error: UserError | None = None
    try:
        yield
    except UserError as err:
        error = err
    if enabled():
        messages: list[str | None] = [None] * world_size()
        dist.all_gather_object(messages, str(error) if error is not None else None)
        if error is None:
            failed = [(r, m) for r, m in enumerate(messages) if m is not None]
            if failed:
                r, m = failed[0]
                raise UserError(f"(on rank {r}) {m}")
    if error is not None:
        raise error


def all_true(flag: bool, device: torch.device) -> bool:
    """Logical AND of a flag over all ranks (the flag itself when not distributed)."""
    if not enabled():
        return flag
    value = torch.tensor(int(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def write_weight_hash(model: torch.nn.Module, epoch: int, step: int) -> None:
    """The debug hook (see WEIGHT_HASH_DIR_ENV): one line per optimizer step, identical across ranks."""
    folder = os.environ.get(WEIGHT_HASH_DIR_ENV)
    if not folder:
        return
    digest = hashlib.sha256()
    total = 0.0
    for p in unwrap(model).parameters():
        data = p.detach().cpu().contiguous()
        digest.update(data.numpy().tobytes())
        total += data.double().sum().item()
    Path(folder).mkdir(parents=True, exist_ok=True)
    with open(Path(folder) / f"rank{rank()}.txt", "a") as f:
        f.write(f"{epoch} {step} {total:.17g} {digest.hexdigest()}\n")
