"""Which device to run on (``--device auto|cpu|cuda|cuda:N|mps``) and in which precision (``--precision``)."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

from posevae.errors import UserError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The device a ``--device`` name means: "auto" = cuda if available, else cpu.

    Other names (cpu, cuda, cuda:N, mps) are checked to exist on this machine; UserError if not.
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    known = "use auto, cpu, cuda, cuda:N or mps"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {name!r} is not a device name: {known}.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name} asks for CUDA but this PyTorch sees no CUDA GPU "
                            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}): "
                            "use --device cpu or auto, or install a CUDA build of PyTorch.")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UserError(f"--device {name}: there is no CUDA device {device.index}, this machine has "
                            f"{count} (cuda:0 .. cuda:{count - 1}).")
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise UserError(f"--device {name}: Apple's MPS backend is not available here; "
                            "use --device cpu or auto.")
    elif device.type != "cpu":
        raise UserError(f"--device {name!r} is not supported: {known}.")
    return device


def autocast_for(device: torch.device, precision: str) -> AbstractContextManager:
    """bf16 autocast where it is fast (CUDA with bf16, CPUs with AMX); fp32 otherwise."""
    if training_precision(device, precision) == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def training_precision(device: torch.device, precision: str) -> str:
    """What ``--precision`` (auto, fp32, bf16) runs on ``device``: "bf16" (autocast) or "fp32".

    "auto" is what measured fastest at the models' shapes: bf16 on a CPU with bf16 instructions; fp32 on
    a GPU, whose convolutions run in TF32 by default (cuDNN), where bf16 autocast trained 12-18% slower and
    generated up to 2x slower at 32x64 on an H200 (its casts are extra kernels; docs/performance.md).
    """
    if precision == "auto":
        return "bf16" if device.type == "cpu" and fast_bf16_available(device) else "fp32"
    return "bf16" if precision == "bf16" else "fp32"


def fast_bf16_available(device: torch.device) -> bool:
    """Whether bf16 runs fast here: a CUDA GPU with bf16, or a CPU with bf16 dot-product instructions (AMX,
    ``amx_bf16``, or AVX-512 BF16, ``avx512_bf16``, in /proc/cpuinfo) that PyTorch may use.

    PyTorch can be kept below the CPU's instruction set (``ATEN_CPU_CAPABILITY=avx2`` for its own kernels,
    ``ONEDNN_MAX_CPU_ISA=AVX2`` for oneDNN, which runs the convolutions): that is how a bf16 machine measures
    what an AVX2-only CPU does, and bf16 is then emulated, slow, so not chosen.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return bool(flags & BF16_CPU_FLAGS) and bf16_kernels_allowed(torch.backends.cpu.get_cpu_capability(),
                                                                 os.environ.get("ONEDNN_MAX_CPU_ISA", ""))


# CPU flags of bf16 dot-product instructions: AMX (Intel Xeon since Sapphire Rapids) and AVX-512 BF16 (also
# AMD EPYC since Zen 4). Measured on 2 Zen 4 cores: the demo's training step 1.6x faster in bf16 than fp32.
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def bf16_kernels_allowed(aten_capability: str, onednn_max_isa: str) -> bool:
    """Whether PyTorch's kernels may use the CPU's bf16 instructions: ATen at AVX512 (not held to AVX2 or
    below) and oneDNN not held below its bf16 levels (``ONEDNN_MAX_CPU_ISA`` unset, ``ALL``, or a level with
    BF16, FP16, AMX or AVX10 in its name: AVX512_CORE_BF16 and above)."""
    isa = onednn_max_isa.strip().upper()
    return aten_capability.upper().startswith("AVX512") and (
        isa in ("", "ALL") or any(level in isa for level in ("BF16", "FP16", "AMX", "AVX10")))
