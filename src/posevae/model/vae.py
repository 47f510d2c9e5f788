"""The conditional VAE: five parts and one step.

    frame_encoder  RGB frame        -> (B, F_dim, h, w)   features of the previous / next frame
    pose_encoder   pose image       -> (B, L_dim, h, w)   features of the next pose
    posterior      [F, L] features  -> mu, logvar (B, N_dim, h, w), z = mu + sigma * eps
    prior          [F, L] features  -> mu_p, logvar_p of p(z | previous frame, next pose)   (--prior learned)
    fusion         [F, L, z]        -> (B, D_out_dim, h, w)
    generator      fused features   -> (B, 3, H, W) frame in [0, 1]

With ``downsample == 1`` (h, w) = (H, W) and every part is the course lab's (each class's
docstring lists its layers).
What differs from the lab, and why:

* ``nn.LeakyReLU(True)`` in the lab sets the negative slope to 1.0 (an identity, a bug): here every
  LeakyReLU has a real slope (0.01 in convolution blocks, 0.2 after the pose encoder's BatchNorm).
* The lab's generator ends with a 1x1 convolution and a clamp to [0, 1]. At initialisation a colour
  channel can start below 0 everywhere; the clamp then passes no gradient and the channel never recovers
  (measured with this project's lab model). A sigmoid bounds the output instead.
* NaN/Inf never leave :meth:`PoseVAE.forward`: a NaN pixel of the output becomes 0.5 (mid-grey, as the lab's
  code writes it; +Inf 1, -Inf 0) and the frame is clamped to [0, 1]; logvar is bounded softly to (-10, 10),
  ``10 tanh(logvar / 10)``, before the reparameterisation (exp cannot overflow; see :func:`_finite_gaussian`).
* ``variant == "template"`` undoes the three changes above and reproduces the course template exactly, so
  its ``.ckpt`` files load (:mod:`posevae.model.template` says what differs and where it was read).
* ``downsample > 1`` (the "fast" preset) adds strided convolutions to the encoders and nearest-neighbour
  upsampling to the generator, so the latent is (H/d, W/d); ``prev_frame_skip`` feeds the previous frame's
  pixels to the generator's last, full-resolution stage so the low-resolution path need not carry them.
* ``skips`` (the "sharp" preset) adds light encoders of the previous frame and the next pose whose features
  join the generator at every scale up to full resolution (U-Net skips), and ``warp`` blends the output
  with the previous frame warped by a predicted flow; see :mod:`posevae.model.unet_parts`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from posevae.config import DEFAULT_NOISE_SCALE, ModelConfig
from posevae.model.layers import DepthConvBlock, ResidualBlock, StepBatchNorm2d, downsample2x, upsample2x
from posevae.model.template import TEMPLATE_SLOPE, TemplateBatchNorm2d
from posevae.model.unet_parts import SkipGenerator, SkipPyramid, WarpBlendHead

LOGVAR_MIN, LOGVAR_MAX = -10.0, 10.0  # symmetric: the soft bound is LOGVAR_MAX * tanh(x / LOGVAR_MAX)
NAN_PIXEL = 0.5  # what a NaN pixel of a generated frame becomes (the lab's code writes 0.5)


RandomSource = torch.Generator | Sequence[torch.Generator] | None  # one generator, or one per batch row


class StepOutput(NamedTuple):
    frame: torch.Tensor  # (B, 3, H, W) predicted frame in [0, 1] (variant "template": the raw output)
    mu: torch.Tensor | None  # (B, N_dim, h, w) posterior mean; None when z came from the prior
    logvar: torch.Tensor | None  # (B, N_dim, h, w) posterior log-variance, in (-10, 10): 10 tanh(raw / 10)
    prior_mu: torch.Tensor | None = None  # (B, N_dim, h, w) learned prior's mean; None with the fixed prior
    prior_logvar: torch.Tensor | None = None  # learned prior's log-variance, bounded as logvar


def standard_normal(shape: tuple[int, ...], like: torch.Tensor,
                    generator: RandomSource = None) -> torch.Tensor:
    """N(0, I) noise of ``shape`` with ``like``'s device and dtype.

    ``generator`` may be a list with one generator per batch row: row i is then drawn from generator i
    alone, so a sequence's samples do not depend on what else is in the batch.

    Drawn as ``new_empty(shape).normal_()``, the same numbers as ``torch.randn(shape)``: under torch.compile
    with a symbolic batch size (a recompile after the batch changed) ``torch.randn(shape, generator=None)``
    fails to trace ("SymIntArrayRef expected to contain only concrete integers", torch 2.11-2.13).
    """
    if isinstance(generator, Sequence):
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
        return torch.cat([like.new_empty((1, *shape[1:])).normal_(generator=g) for g in generator])
    return like.new_empty(shape).normal_(generator=generator)


def _finite_gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NaN/Inf -> finite values; logvar softly bounded to (LOGVAR_MIN, LOGVAR_MAX) (exp cannot overflow).

    The bound is 10 * tanh(logvar / 10), not a hard clamp: a clamped logvar gets no gradient, so once one
    drifted past 10 (it does while beta = 0 leaves the posterior unchecked) it stayed there, its noise
    (sigma = e^5) overflowed the generator, and every later step's gradient was NaN (measured on the demo
    data with the learned prior). With tanh the gradient never vanishes, so the variance can come back.
    """
    mu = torch.nan_to_num(mu, nan=0.0, posinf=0.0, neginf=0.0)
    logvar = torch.nan_to_num(logvar, nan=0.0, posinf=LOGVAR_MAX, neginf=LOGVAR_MIN)
    return mu, LOGVAR_MAX * torch.tanh(logvar / LOGVAR_MAX)


def _finite_only(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NaN/Inf -> finite values, finite values unchanged (the template variant: its logvar is unbounded)."""
    mu = torch.nan_to_num(mu, nan=0.0, posinf=0.0, neginf=0.0)
    return mu, torch.nan_to_num(logvar, nan=0.0, posinf=LOGVAR_MAX, neginf=LOGVAR_MIN)


def _latent(shape: tuple[int, ...], mu: torch.Tensor | None, logvar: torch.Tensor | None, scale: float,
            z_mode: str, generator: RandomSource, like: torch.Tensor,
            noise: torch.Tensor | None = None) -> torch.Tensor:
    """z of N(mu, (scale * sigma)^2), or of N(0, scale^2 I) without ``mu``: a sample, or with ``z_mode``
    "mean" the mean (mu, or zeros of ``shape`` like ``like``). ``noise``: the N(0, I) draw of ``shape`` to
    use instead of drawing one (the batched training step replays a rollout's noise)."""
    if z_mode == "mean":
        return mu if mu is not None else like.new_zeros(shape)
    dtype_of = mu if mu is not None else like
    eps = (noise.to(dtype_of.dtype) if noise is not None
           else standard_normal(shape, dtype_of, generator))
    if mu is None or logvar is None:
        return scale * eps
    return mu + scale * torch.exp(0.5 * logvar) * eps


def _n_halvings(downsample: int) -> int:
    return int(math.log2(downsample))


class FrameEncoder(nn.Module):
    """RGB 3 -> F: Res(3,F/8) DCB Res(F/8,F/4) DCB Res(F/4,F/2) DCB Conv3x3(F/2,F) (+ stride-2 convs)."""

    def __init__(self, out_ch: int, downsample: int = 1) -> None:
        super().__init__()
        c1, c2, c3 = out_ch // 8, out_ch // 4, out_ch // 2
        halvings = _n_halvings(downsample)
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate([(3, c1), (c1, c2), (c2, c3)]):
            layers += [ResidualBlock(cin, cout), DepthConvBlock(cout)]
            if i < halvings:
                layers.append(downsample2x(cout))
        layers.append(nn.Conv2d(c3, out_ch, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return self.net(frame)


class PoseEncoder(nn.Module):
    """Pose image 3 -> L: ReflectionPad(3) Conv7x7(3, L/2) BatchNorm LeakyReLU(slope) Res(L/2, L).

    ``template``: the course template's BatchNorm (:class:`TemplateBatchNorm2d`) and slope 1.0.
    """

    def __init__(self, out_ch: int, downsample: int = 1, template: bool = False) -> None:
        super().__init__()
        half = out_ch // 2
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(3, half, 7),
            TemplateBatchNorm2d(half) if template else StepBatchNorm2d(half),
            nn.LeakyReLU(TEMPLATE_SLOPE if template else 0.2),
        ]
        layers += [downsample2x(half) for _ in range(_n_halvings(downsample))]
        layers.append(ResidualBlock(half, out_ch))
        self.net = nn.Sequential(*layers)

    def forward(self, pose: torch.Tensor) -> torch.Tensor:
        return self.net(pose)


class GaussianPredictor(nn.Module):
    """[F, L] -> (mu, logvar) of N channels: Res(F+L, N/4) DCB Res(N/4, N/2) DCB Res(N/2, N) Conv1x1(N, 2N).

    ``slope``: of the LeakyReLU before the last convolution (the course template's is 1.0).
    """

    def __init__(self, in_ch: int, latent_ch: int, slope: float = 0.01) -> None:
        super().__init__()
        c1, c2 = max(latent_ch // 4, 1), max(latent_ch // 2, 1)
        self.net = nn.Sequential(
            ResidualBlock(in_ch, c1),
            DepthConvBlock(c1),
            ResidualBlock(c1, c2),
            DepthConvBlock(c2),
            ResidualBlock(c2, latent_ch),
            nn.LeakyReLU(slope),
            nn.Conv2d(latent_ch, 2 * latent_ch, 1),
        )

    def forward(self, frame_feat: torch.Tensor, pose_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net(torch.cat([frame_feat, pose_feat], dim=1)).chunk(2, dim=1)
        return mu, logvar


class DecoderFusion(nn.Module):
    """[F, L, N] = c -> D: DCB(c) Res(c, c/4) DCB(c/4, c/2) Res(c/2, c/2) DCB(c/2, D/2) Conv1x1(D/2, D)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            DepthConvBlock(in_ch),
            ResidualBlock(in_ch, in_ch // 4),
            DepthConvBlock(in_ch // 4, in_ch // 2),
            ResidualBlock(in_ch // 2, in_ch // 2),
            DepthConvBlock(in_ch // 2, out_ch // 2),
            nn.Conv2d(out_ch // 2, out_ch, 1),
        )

    def forward(self, frame_feat: torch.Tensor, pose_feat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([frame_feat, pose_feat, z], dim=1))


class Generator(nn.Module):
    """D -> RGB: DCB(D) Res(D,D/2) DCB Res(D/2,D/4) DCB Res(D/4,D/8) DCB Conv1x1(D/8,3), then a sigmoid.

    With ``downsample > 1`` the last stages are preceded by 2x upsampling; with ``prev_frame_skip`` the
    previous frame's pixels are concatenated before the final full-resolution block; with ``warp`` the output
    is blended with the previous frame warped by a predicted flow
    (:class:`~posevae.model.unet_parts.WarpBlendHead`).
    ``sigmoid`` False (the course template) returns the last convolution's output as it is.
    """

    def __init__(self, in_ch: int, downsample: int = 1, prev_frame_skip: bool = False, warp: bool = False,
                 sigmoid: bool = True) -> None:
        super().__init__()
        widths = [in_ch, in_ch // 2, in_ch // 4, in_ch // 8]
        halvings = _n_halvings(downsample)
        stages: list[nn.Module] = []
        for i in range(3):
            stage: list[nn.Module] = [DepthConvBlock(widths[i]), ResidualBlock(widths[i], widths[i + 1])]
            if i >= 3 - halvings:  # upsample as late as possible: the expensive wide stages stay small
                stage.append(upsample2x(widths[i + 1]))
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.prev_frame_skip = prev_frame_skip
        last = widths[3]
        self.skip_in = nn.Conv2d(last + 3, last, 1) if prev_frame_skip else nn.Identity()
        self.head = nn.Sequential(DepthConvBlock(last), nn.Conv2d(last, 3, 1))
        self.sigmoid = sigmoid
        self.warp = WarpBlendHead(last) if warp else None

    def forward(self, fused: torch.Tensor, prev_frame: torch.Tensor) -> torch.Tensor:
        x = self.stages(fused)
        if self.prev_frame_skip:
            x = self.skip_in(torch.cat([x, prev_frame], dim=1))
        if self.warp is None:
            out = self.head(x)
            return torch.sigmoid(out) if self.sigmoid else out
        features = self.head[0](x)  # (B, D/8, H, W)
        return self.warp(features, torch.sigmoid(self.head[1](features)), prev_frame)


class PoseVAE(nn.Module):
    """Predicts frame t from frame t-1 and the pose of frame t (a conditional VAE with a spatial latent)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        template = c.variant == "template"  # the course template exactly (posevae.model.template)
        self.frame_encoder = FrameEncoder(c.F_dim, c.downsample)
        self.pose_encoder = PoseEncoder(c.L_dim, c.downsample, template)
        self.posterior = GaussianPredictor(c.F_dim + c.L_dim, c.N_dim,  # q(z | next frame, next pose)
                                           TEMPLATE_SLOPE if template else 0.01)
        # p(z | previous frame, next pose); absent with the fixed N(0, I) prior (the lab's parameters exactly)
        self.prior = GaussianPredictor(c.F_dim + c.L_dim, c.N_dim) if c.prior == "learned" else None
        self.fusion = DecoderFusion(c.F_dim + c.L_dim + c.N_dim, c.D_out_dim)
        # the sharp preset's skip encoders (posevae.model.unet_parts); absent otherwise (older models exactly)
        self.frame_pyramid: SkipPyramid | None = None
        self.pose_pyramid: SkipPyramid | None = None
        self.generator: Generator | SkipGenerator
        if c.skips:
            levels = max(_n_halvings(c.downsample), 1)
            self.frame_pyramid = SkipPyramid(c.skip_width, levels)  # previous frame, not detached
            self.pose_pyramid = SkipPyramid(c.skip_width, levels)  # next pose
            self.generator = SkipGenerator(c.D_out_dim, c.downsample, self.frame_pyramid.widths, c.warp)
        else:
            self.generator = Generator(c.D_out_dim, c.downsample, c.prev_frame_skip, c.warp,
                                       sigmoid=not template)
        self._gaussian = _finite_only if template else _finite_gaussian
        self._clamp_frame = not template  # the template feeds its raw output back

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        c = self.config
        return (c.N_dim, c.frame_H // c.downsample, c.frame_W // c.downsample)

    def forward(
        self,
        prev_frame: torch.Tensor,
        next_pose: torch.Tensor,
        next_frame: torch.Tensor | None = None,
        *,
        noise_scale: float = DEFAULT_NOISE_SCALE,
        z_mode: str = "sample",
        generator: RandomSource = None,
        noise: torch.Tensor | None = None,
        posterior_rows: torch.Tensor | None = None,
    ) -> StepOutput:
        """One step. prev_frame, next_pose, next_frame: (B, 3, H, W) floats in [0, 1].

        With ``next_frame`` the latent comes from the posterior q(z | next frame, next pose) and mu/logvar
        are returned; without it, from the prior: N(0, noise_scale^2 I) (fixed) or
        N(mu_p, (noise_scale * sigma_p)^2) (learned); ``noise_scale`` defaults to the test time's
        :data:`~posevae.config.DEFAULT_NOISE_SCALE` (0.5). ``z_mode`` "mean" uses the mean (mu, 0 or mu_p)
        instead of a sample. A learned prior's mu_p/logvar_p are returned in both cases (training needs
        them for KL(q || p)). The previous frame's features are detached, as in the lab's training step:
        the frame encoder learns through the posterior path, and every time step is a graph of its own (so
        a backward per step equals one backward per clip). ``generator``: one, or one per batch row.
        ``noise`` (B, N_dim, h, w): the latent's N(0, I) draw, given instead of drawn (then ``generator`` is
        not used). ``posterior_rows`` (B,) bool, with ``next_frame``: only these rows take z from the
        posterior, the others from the prior, each row with one draw of noise (validation rolls out both as
        one batch); mu/logvar are returned for every row.
        """
        with torch.no_grad():  # detached, so no graph: the same values, less time and memory
            prev_feat = self.frame_encoder(prev_frame)  # (B, F, h, w)
        pose_feat = self.pose_encoder(next_pose)  # (B, L, h, w)
        mu = logvar = prior_mu = prior_logvar = None
        if self.prior is not None:
            prior_mu, prior_logvar = self._gaussian(*self.prior(prev_feat, pose_feat))
        shape = (prev_frame.shape[0], *self.latent_shape)
        if posterior_rows is not None and noise is None and z_mode != "mean":
            noise = standard_normal(shape, pose_feat, generator)  # one draw a row, for either latent
        z: torch.Tensor | None = None
        if next_frame is not None:
            mu, logvar = self._gaussian(*self.posterior(self.frame_encoder(next_frame), pose_feat))
            z = _latent(shape, mu, logvar, 1.0, z_mode, generator, pose_feat, noise)
        if z is None or posterior_rows is not None:
            # the learned prior's N(mu_p, sigma_p^2), or N(0, I); its noise scaled by noise_scale
            z_prior = _latent(shape, prior_mu, prior_logvar, noise_scale, z_mode, generator, pose_feat, noise)
            z = z_prior if z is None or posterior_rows is None else torch.where(
                posterior_rows.view(-1, 1, 1, 1), z, z_prior)
        fused = self.fusion(prev_feat, pose_feat, z.to(pose_feat.dtype))
        frame = self._generate(fused, prev_frame, next_pose)
        frame = torch.nan_to_num(frame, nan=NAN_PIXEL, posinf=1.0, neginf=0.0)
        if self._clamp_frame:
            frame = frame.clamp(0.0, 1.0)
        return StepOutput(frame, mu, logvar, prior_mu, prior_logvar)

    def _generate(self, fused: torch.Tensor, prev_frame: torch.Tensor,
                  next_pose: torch.Tensor) -> torch.Tensor:
        """Fused features (B, D, h, w) -> frame (B, 3, H, W); with skips, through both skip pyramids."""
        if self.frame_pyramid is None or self.pose_pyramid is None:
            return self.generator(fused, prev_frame)
        return self.generator(fused, prev_frame, next_pose, self.frame_pyramid(prev_frame),
                              self.pose_pyramid(next_pose))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
