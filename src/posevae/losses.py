"""Losses of the conditional VAE: reconstruction MSE, the KL divergence of the posterior, and an edge term.

KL(q || N(0, I)) = -0.5 * sum(1 + logvar - mu^2 - exp(logvar))   (Kingma & Welling 2014, appendix B);
with a learned prior p = N(mu_p, exp(logvar_p)) (SVG-LP), the KL of two diagonal Gaussians:
KL(q || p) = 0.5 * sum(logvar_p - logvar + (exp(logvar) + (mu - mu_p)^2) / exp(logvar_p) - 1).
Every logvar is clamped to [-10, 10] (the strong report's bound), then the sum normalised either by every
latent element (batch * C * H * W, the strong report's choice, default) or by the batch size (the lab's
template). The clamp never acts on the posevae model's logvars, which it already bounds softly to (-10, 10)
(:func:`posevae.model.vae._finite_gaussian`); it acts on the template variant's, which are unbounded as in
the course template, and keeps their exp() from overflowing.

The gradient-difference loss (GDL) of Mathieu, Couprie & LeCun ("Deep multi-scale video prediction beyond
mean square error", ICLR 2016, eq. 5) penalises differences between the image gradients of the prediction
and of the target, which MSE alone lets blur away (Y the target, P the prediction, alpha = 1 by default):
GDL = mean_ij | |Y[i,j] - Y[i-1,j]| - |P[i,j] - P[i-1,j]| |^alpha
    + mean_ij | |Y[i,j-1] - Y[i,j]| - |P[i,j-1] - P[i,j]| |^alpha
(means instead of the paper's sums, so the weight does not depend on the frame size). Off by default
(``--gdl_weight 0``): the lab's loss is MSE + beta * KL.

The person term (``--person_weight``) is the MSE over the pose region of the frame's own label, the pixels
:func:`posevae.metrics.pose_region_psnr` scores: the dancer covers about a tenth of a frame, so the plain MSE
spends nine tenths of its gradient on the background. Off by default (``--person_weight 0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from posevae.config import KLNorm
from posevae.metrics import pose_region_mask
from posevae.model.vae import LOGVAR_MAX, LOGVAR_MIN, StepOutput


def _normalise(kl_sum: torch.Tensor, like: torch.Tensor, norm: KLNorm) -> torch.Tensor:
    if norm == "elements":
        return kl_sum / like.numel()
    if norm == "batch":
        return kl_sum / like.shape[0]
    raise ValueError(f"unknown KL normalisation {norm!r}; use 'elements' or 'batch'")


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor, norm: KLNorm = "elements") -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over every element, then normalised (see module doc)."""
    mu, logvar = mu.float(), logvar.float().clamp(LOGVAR_MIN, LOGVAR_MAX)
    kl_sum = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return _normalise(kl_sum, mu, norm)


def kl_between_gaussians(
    mu: torch.Tensor, logvar: torch.Tensor, prior_mu: torch.Tensor, prior_logvar: torch.Tensor,
    norm: KLNorm = "elements",
) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(prior_mu, exp(prior_logvar))), summed, then normalised (see module doc)."""
    mu, prior_mu = mu.float(), prior_mu.float()
    logvar = logvar.float().clamp(LOGVAR_MIN, LOGVAR_MAX)
    prior_logvar = prior_logvar.float().clamp(LOGVAR_MIN, LOGVAR_MAX)
    kl = prior_logvar - logvar + (logvar.exp() + (mu - prior_mu).pow(2)) * torch.exp(-prior_logvar) - 1
    return _normalise(0.5 * kl.sum(), mu, norm)


def step_kl(out: StepOutput, norm: KLNorm = "elements") -> torch.Tensor:
    """The KL term of one model step: to the learned prior when the model has one, else to N(0, I).

    ``out`` must come from the posterior (a step given the next frame), which returns mu and logvar.
    """
    if out.mu is None or out.logvar is None:
        raise ValueError("step_kl needs a step from the posterior (next_frame given): mu and logvar are None")
    if out.prior_mu is None or out.prior_logvar is None:
        return kl_to_standard_normal(out.mu, out.logvar, norm)
    return kl_between_gaussians(out.mu, out.logvar, out.prior_mu, out.prior_logvar, norm)


def reconstruction_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every pixel of the batch (the lab's nn.MSELoss())."""
    return F.mse_loss(pred.float(), target.float())


def gradient_difference_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """GDL of (..., H, W) images (module doc): the mean over vertical plus the mean over horizontal
    neighbours."""
    pred, target = pred.float(), target.float()

    def edges(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # |d/dy|, |d/dx|
        return (image[..., 1:, :] - image[..., :-1, :]).abs(), (image[..., :, 1:] - image[..., :, :-1]).abs()

    (pred_dy, pred_dx), (target_dy, target_dx) = edges(pred), edges(target)
    return (target_dy - pred_dy).abs().pow(alpha).mean() + (target_dx - pred_dx).abs().pow(alpha).mean()


def person_region_mse(pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """MSE over the pose region of ``labels`` (B, 3, H, W): every channel of every masked pixel of the batch;
    0 when no label has a pose pixel (nothing to weigh)."""
    mask = pose_region_mask(labels).unsqueeze(-3)  # (B, 1, H, W)
    sq_err = (pred.float() - target.float()).pow(2) * mask
    count = mask.sum() * pred.shape[-3]
    return sq_err.sum() / count.clamp_min(1)
