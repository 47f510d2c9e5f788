"""Building blocks of the lab's network: a residual block and a depthwise-conv block.

Both follow the course lab's layer descriptions (listed in each class's docstring). Every activation here is a
real LeakyReLU with the slope the lab intended; the lab's ``nn.LeakyReLU(True)`` (slope 1.0, an identity)
is not copied.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with LeakyReLU(0.01), plus a 1x1 projection of the input when widths differ."""

    def __init__(self, in_ch: int, out_ch: int, slope: float = 0.01) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.act = nn.LeakyReLU(slope)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.conv1(x))
        out = self.act(self.conv2(out))
        return out + self.skip(x)


class DepthConv(nn.Module):
    """1x1 conv, LeakyReLU(0.01), depthwise kxk conv, 1x1 conv to ``out_ch``; residual (projected if
    needed)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, slope: float = 0.01) -> None:
        super().__init__()
        self.pointwise_in = nn.Sequential(nn.Conv2d(in_ch, in_ch, 1), nn.LeakyReLU(slope))
        self.depthwise = nn.Conv2d(in_ch, in_ch, kernel, padding=kernel // 2, groups=in_ch)
        self.pointwise_out = nn.Conv2d(in_ch, out_ch, 1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_out(self.depthwise(self.pointwise_in(x))) + self.skip(x)


class GatedFFN(nn.Module):
    """Gated 1x1 feed-forward: expand to 4x, split in two halves, x1 * LeakyReLU(0.1)(x2), project back;
    residual."""

    def __init__(self, ch: int, expansion: int = 4, slope: float = 0.1) -> None:
        super().__init__()
        hidden = ch * expansion
        self.expand = nn.Conv2d(ch, hidden, 1)
        self.gate = nn.LeakyReLU(slope)
        self.project = nn.Conv2d(hidden // 2, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.expand(x).chunk(2, dim=1)
        return self.project(x1 * self.gate(x2)) + x


class DepthConvBlock(nn.Sequential):
    """The lab's DCB: a :class:`DepthConv` then a :class:`GatedFFN`."""

    def __init__(self, in_ch: int, out_ch: int | None = None) -> None:
        out_ch = in_ch if out_ch is None else out_ch
        super().__init__(DepthConv(in_ch, out_ch), GatedFFN(out_ch))


def downsample2x(ch: int) -> nn.Module:
    """Halve the resolution with a learned 3x3 stride-2 convolution (used by the fast presets only)."""
    return nn.Conv2d(ch, ch, 3, stride=2, padding=1)


def upsample2x(ch: int) -> nn.Module:
    """Double the resolution: nearest-neighbour upsampling then a 3x3 convolution (fast presets only)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1))


class StepBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that, in training, can take a batch of several time steps and normalise each step apart.

    The batched training step (posevae.training.step) stacks the k model steps of B clips into one batch of
    B x k rows (row b * k + s: clip b, step s). With ``steps`` = k, each step's B rows are normalised by their
    own statistics and the running statistics are updated once per step, in order: what the step-by-step
    (sequential) training computes, so the two steps train the same model. ``steps`` 1 (the default, and
    always in eval mode) is plain BatchNorm2d; same parameters and buffers.
    """

    steps: int = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.steps == 1:
            return super().forward(x)
        rows = x.unflatten(0, (-1, self.steps))  # (B, k, C, H, W)
        normalise = super().forward  # one step's B rows, updating the running statistics as that step would
        steps = [normalise(rows[:, s].contiguous()) for s in range(self.steps)]  # contiguous: bit for bit
        return torch.stack(steps, dim=1).flatten(0, 1)
