"""--precision auto: bf16 only where it is fast (AMX or AVX-512 BF16), not when PyTorch is held below it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from posevae.device import autocast_for, bf16_kernels_allowed


@pytest.mark.parametrize(("aten", "onednn", "allowed"), [
    ("AVX512", "", True),
    ("AVX512", "ALL", True),
    ("AVX512", "avx512_core_amx", True),
    ("AVX512", "AVX512_CORE_BF16", True),  # AVX-512 BF16 (AMD Zen 4)
    ("AVX512", "AVX2", False),  # oneDNN held to AVX2: its bf16 convolutions are emulated, slow
    ("AVX512", "AVX512_CORE", False),
    ("AVX512", "AVX512_CORE_VNNI", False),
    ("AVX2", "", False),  # ATen held to AVX2 (ATEN_CPU_CAPABILITY=avx2)
    ("DEFAULT", "", False),
])
def test_bf16_kernels_allowed(aten: str, onednn: str, allowed: bool) -> None:
    assert bf16_kernels_allowed(aten, onednn) is allowed


def test_fp32_is_no_autocast_and_auto_follows_the_emulation() -> None:
    """Held to AVX2 by both variables, --precision auto runs fp32 even on an AMX CPU (a fresh process: ATen
    reads its variable once)."""
    assert not torch.is_autocast_enabled("cpu")
    with autocast_for(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast_for(torch.device("cpu"), "bf16"):
        assert torch.is_autocast_enabled("cpu")
    code = ("import torch; from posevae.device import fast_bf16_available as f; "
            "print(torch.backends.cpu.get_cpu_capability(), f(torch.device('cpu')))")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["AVX2", "False"]


def test_auto_is_fp32_on_a_gpu_and_follows_the_instructions_on_a_cpu(monkeypatch) -> None:
    """On a GPU bf16 autocast measured slower at these shapes (docs/performance.md): auto trains in fp32."""
    import posevae.device as device

    monkeypatch.setattr(device, "fast_bf16_available", lambda _: True)
    assert device.training_precision(torch.device("cuda"), "auto") == "fp32"
    assert device.training_precision(torch.device("cuda"), "bf16") == "bf16"  # chosen by the user
    assert device.training_precision(torch.device("cpu"), "auto") == "bf16"
    monkeypatch.setattr(device, "fast_bf16_available", lambda _: False)
    assert device.training_precision(torch.device("cpu"), "auto") == "fp32"
    assert device.training_precision(torch.device("cpu"), "bf16") == "bf16"
