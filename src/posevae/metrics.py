"""Frame-quality metrics, vectorised over any leading dimensions (..., C, H, W) -> (...).

PSNR follows the lab: per frame, 10 * log10(1 / MSE) with MSE over all pixels of that frame (not over
the batch); a sequence's PSNR is the mean of its per-frame values. Identical frames would give +inf: the
MSE is floored at 1e-10, so the ceiling is 100 dB.

SSIM follows Wang et al. 2004 with the usual constants (K1 0.01, K2 0.03, data range 1) and an 11-tap
Gaussian window of sigma 1.5, averaged over channels and over the 'valid' region (the pixels whose window
lies inside the frame): the same numbers as ``skimage.metrics.structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=0)``.

Person metrics: whole-frame PSNR is dominated by the static background, so a dancer who loses an arm
barely moves it. Two PSNRs look only at the person, found from the frame's own pose label (a skeleton
drawn in colour on black):

- pose-region PSNR (:func:`pose_region_psnr`): over the label's pose pixels (any channel above
  LABEL_THRESHOLD = 0.02, i.e. uint8 values of 6 and up, which drops the faint haze a bilinear resize of
  the label leaves around the limbs) dilated by 1 px (3x3 max-pool);
- person-box PSNR (:func:`person_box_psnr`): over the bounding box of the pose pixels, padded by 2 px on
  every side and clipped to the frame.

Both average the squared error over the masked pixels and the channels, then take 10 * log10(1 / MSE)
with the same 1e-10 floor as :func:`psnr` (a perfect prediction gives 100 dB). A label with no pose pixel
gives an empty mask and NaN for that frame; sequence means of these metrics skip NaN frames (nanmean).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MSE_FLOOR = 1e-10
LABEL_THRESHOLD = 0.02  # a label pixel is part of the pose when any channel exceeds this (uint8 >= 6)
POSE_DILATION_PX = 1  # pose pixels grown by this many pixels (a (2k+1) x (2k+1) max-pool)
BOX_PADDING_PX = 2  # the person box reaches this many pixels beyond the outermost pose pixels


def frame_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) x2 -> (...): mean squared error of each frame."""
    return (pred.float() - target.float()).pow(2).mean(dim=(-3, -2, -1))


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) x2 in [0, 1] -> (...): PSNR of each frame in dB."""
    return -10.0 * torch.log10(frame_mse(pred, target).clamp_min(MSE_FLOOR))


def pose_pixels(labels: torch.Tensor) -> torch.Tensor:
    """Labels (..., C, H, W) in [0, 1] (uint8 is scaled by 1/255) -> bool (..., H, W): any channel above
    LABEL_THRESHOLD, i.e. the non-black pixels of the drawn skeleton."""
    values = labels.float() / 255.0 if labels.dtype == torch.uint8 else labels.float()
    return (values > LABEL_THRESHOLD).any(dim=-3)


def pose_region_mask(labels: torch.Tensor) -> torch.Tensor:
    """Labels (..., C, H, W) -> bool (..., H, W): the pose pixels dilated by POSE_DILATION_PX (max-pool)."""
    pixels = pose_pixels(labels)
    *lead, h, w = pixels.shape
    k = 2 * POSE_DILATION_PX + 1
    flat = pixels.reshape(-1, 1, h, w).float()  # max_pool2d pads with -inf: the frame edge adds nothing
    grown = F.max_pool2d(flat, kernel_size=k, stride=1, padding=POSE_DILATION_PX)
    return grown.reshape(*lead, h, w) > 0


def person_box_mask(labels: torch.Tensor) -> torch.Tensor:
    """Labels (..., C, H, W) -> bool (..., H, W): the bounding box of the pose pixels, padded by
    BOX_PADDING_PX and clipped to the frame; all False when the label has no pose pixel."""
    pixels = pose_pixels(labels)
    rows = _padded_span(pixels.any(dim=-1), BOX_PADDING_PX)  # (..., H)
    cols = _padded_span(pixels.any(dim=-2), BOX_PADDING_PX)  # (..., W)
    return rows.unsqueeze(-1) & cols.unsqueeze(-2)


def _padded_span(occupied: torch.Tensor, pad: int) -> torch.Tensor:
    """bool (..., L) -> bool (..., L): True from the first to the last True index, widened by ``pad`` on
    each side (clipped by the length); all False when nothing is occupied."""
    n = occupied.shape[-1]
    index = torch.arange(n, device=occupied.device)
    first = torch.where(occupied, index, n).amin(dim=-1, keepdim=True)
    last = torch.where(occupied, index, -1).amax(dim=-1, keepdim=True)
    return (index >= first - pad) & (index <= last + pad) & occupied.any(dim=-1, keepdim=True)


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) x2 in [0, 1] and bool mask (..., H, W) -> (...): PSNR in dB of the MSE over the
    masked pixels and all channels; floored like :func:`psnr`; NaN where the mask is empty.

    The mask broadcasts against the frames' leading dimensions (one label for several samples)."""
    sq_err = (pred.float() - target.float()).pow(2).sum(dim=-3)  # (..., H, W), summed over channels
    weight = mask.to(sq_err.dtype)
    count = weight.sum(dim=(-2, -1)) * pred.shape[-3]  # masked values per frame: pixels x channels
    mse = (sq_err * weight).sum(dim=(-2, -1)) / count.clamp_min(1)
    db = -10.0 * torch.log10(mse.clamp_min(MSE_FLOOR))
    return torch.where(count > 0, db, torch.full_like(db, math.nan))


def pose_region_psnr(pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) frames and their pose labels -> (...): PSNR over the dilated pose pixels."""
    return masked_psnr(pred, target, pose_region_mask(labels))


def person_box_psnr(pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) frames and their pose labels -> (...): PSNR over the padded person box."""
    return masked_psnr(pred, target, person_box_mask(labels))


def frame_and_person_psnr(pred: torch.Tensor, target: torch.Tensor,
                          labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """(..., 3, H, W) frames and their labels -> {"psnr": whole frame, "psnr_pose": pose region,
    "psnr_box": person box}, each (...) in dB: what validation and test report per frame."""
    return {"psnr": psnr(pred, target), "psnr_pose": pose_region_psnr(pred, target, labels),
            "psnr_box": person_box_psnr(pred, target, labels)}


def _gaussian_window(size: int = 11, sigma: float = 1.5,
                     device: torch.device | str | None = None) -> torch.Tensor:
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
