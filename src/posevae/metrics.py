"""Frame-quality metrics, vectorised over any leading dimensions (..., C, H, W) -> (...).

PSNR follows the lab: per frame, 10 * log10(1 / MSE) with MSE over all pixels of that frame (not over
the batch); a sequence's PSNR is the mean of its per-frame values. Identical frames would give +inf: the
MSE is floored at 1e-10, so the ceiling is 100 dB.

SSIM follows Wang et al. 2004 with the usual constants (K1 0.01, K2 0.03, data range 1) and an 11-tap
Gaussian window of sigma 1.5, averaged over channels and over the 'valid' region (the pixels whose window
lies inside the frame): the same numbers as ``skimage.metrics.structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=0)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MSE_FLOOR = 1e-10


def frame_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) x2 -> (...): mean squared error of each frame."""
    return (pred.float() - target.float()).pow(2).mean(dim=(-3, -2, -1))


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) x2 in [0, 1] -> (...): PSNR of each frame in dB."""
    return -10.0 * torch.log10(frame_mse(pred, target).clamp_min(MSE_FLOOR))


def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(..., C, H, W) x2 in [0, 1] -> (...): SSIM of each frame (mean over channels and valid pixels)."""
    if pred.shape != target.shape:
        raise ValueError(f"ssim needs equal shapes, got {tuple(pred.shape)} and {tuple(target.shape)}")
    *lead, c, h, w = pred.shape
    if h < window or w < window:
        raise ValueError(f"ssim needs frames of at least {window}x{window} pixels, got {h}x{w}")
    x = pred.reshape(-1, 1, h, w).double()
    y = target.reshape(-1, 1, h, w).double()
    g = _gaussian_window(window, sigma, x.device)

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable Gaussian, 'valid' region only
        t = F.conv2d(t, g.view(1, 1, -1, 1))
        return F.conv2d(t, g.view(1, 1, 1, -1))

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    per_channel = s.mean(dim=(-2, -1)).view(*lead, c)
    return per_channel.mean(dim=-1).float()
