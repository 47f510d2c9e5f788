import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posevae.metrics import psnr, ssim


def test_psnr_is_per_frame_not_per_batch():
    target = torch.zeros(2, 3, 3, 8, 8)
    pred = target.clone()
    pred[0, 0] += 0.1  # MSE 0.01 -> 20 dB
    pred[1, 2] += 0.01  # MSE 1e-4 -> 40 dB
    got = psnr(pred, target)
    assert got.shape == (2, 3)
    assert got[0, 0].item() == pytest.approx(20.0, abs=1e-4)
    assert got[1, 2].item() == pytest.approx(40.0, abs=1e-3)
    assert got[0, 1].item() == pytest.approx(100.0)  # identical frames: capped at 100 dB


def test_psnr_matches_numpy_oracle():
    rng = np.random.default_rng(0)
    a, b = rng.random((4, 3, 16, 32)), rng.random((4, 3, 16, 32))
    expected = [10 * math.log10(1 / np.mean((x - y) ** 2)) for x, y in zip(a, b)]
    got = psnr(torch.from_numpy(a), torch.from_numpy(b))
    assert got.tolist() == pytest.approx(expected, rel=1e-5)


def test_ssim_matches_scikit_image():
    skm = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(1)
    a = rng.random((2, 2, 3, 32, 64)).astype(np.float32)
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    got = ssim(torch.from_numpy(a), torch.from_numpy(b))
    assert got.shape == (2, 2)
    for i in range(2):
        for t in range(2):
            ref = skm.structural_similarity(a[i, t], b[i, t], gaussian_weights=True, sigma=1.5,
                                            use_sample_covariance=False, data_range=1.0, channel_axis=0)
            assert got[i, t].item() == pytest.approx(ref, abs=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), noise=st.floats(0.0, 0.5))
def test_psnr_ssim_symmetry_and_bounds(seed, noise):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(2, 3, 16, 16, generator=g)
    b = (a + noise * torch.randn(a.shape, generator=g)).clamp(0, 1)
    p_ab, p_ba = psnr(a, b), psnr(b, a)
    s_ab, s_ba = ssim(a, b), ssim(b, a)
    assert torch.allclose(p_ab, p_ba) and torch.allclose(s_ab, s_ba, atol=1e-6)
    assert (p_ab >= 0).all() and (p_ab <= 100).all()
    assert (s_ab <= 1 + 1e-6).all() and (s_ab >= -1 - 1e-6).all()
    assert torch.allclose(ssim(a, a), torch.ones(2), atol=1e-6)
