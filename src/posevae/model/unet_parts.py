"""Parts of the "sharp" preset (U-Net skips of the previous frame and the next pose) and of `--warp` (flow
warping, in no preset).

The fast preset runs everything at (H/4, W/4): at 32x64 an arm is one pixel wide at full resolution and
gone at 8x16, so the generator cannot put limbs back where the pose says. The sharp preset keeps the fast
preset's small latent and wide fusion at (H/4, W/4) and adds two cheap paths at the resolutions the fast
generator upsamples through:

* :class:`SkipPyramid`: a light encoder (a few narrow channels at full resolution, twice as many at each
  halving) of the previous frame, and another of the next pose. Their features are concatenated into the
  generator at every scale it upsamples to, the full resolution included: the skip connections of U-Net
  (Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI
  2015), which the pose-to-image generators of Everybody Dance Now (Chan et al., ICCV 2019, a pix2pixHD
  generator) build on.
* :class:`WarpBlendHead` (``--warp``): the last features predict a flow field and a blend mask at full
  resolution; the previous frame, warped by the flow (bilinear ``grid_sample``, border padding), is blended
  with the generated RGB image. Motion-transfer generators keep texture sharp this way: Monkey-Net
  (Siarohin et al., "Animating Arbitrary Objects via Deep Motion Transfer", CVPR 2019) and FOMM (Siarohin
  et al., "First Order Motion Model for Image Animation", NeurIPS 2019) warp the source image by a dense
  motion field with an occlusion mask; vid2vid (Wang et al., NeurIPS 2018) blends the warped previous
  frame with a hallucinated image through a soft mask. The flow layer starts at zero, so at initialisation
  the warp copies the previous frame.

Nothing here needs downloaded weights.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from posevae.model.layers import DepthConvBlock, ResidualBlock, upsample2x

SKIP_SLOPE = 0.2  # LeakyReLU slope of the skip encoders (pix2pix / U-Net encoders)


class SkipPyramid(nn.Module):
    """Image (B, 3, H, W) -> one feature map per scale: [(B, c, H, W), (B, 2c, H/2, W/2), ...].

    Level 0: Conv3x3(3, c) LReLU Conv3x3(c, c) LReLU; level i > 0: a stride-2 Conv3x3 to c * 2^i, LReLU,
    Conv3x3, LReLU. No normalisation: the features are summed into the generator as they are.
    """

    def __init__(self, width: int, levels: int, in_ch: int = 3) -> None:
        super().__init__()
        self.widths = [width * 2**i for i in range(levels)]
        blocks: list[nn.Module] = []
        cin = in_ch
        for i, cout in enumerate(self.widths):
            blocks.append(nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=1 if i == 0 else 2, padding=1),
                nn.LeakyReLU(SKIP_SLOPE),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.LeakyReLU(SKIP_SLOPE),
            ))
            cin = cout
        self.levels = nn.ModuleList(blocks)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        features = []
        x = image
        for level in self.levels:
            x = level(x)
            features.append(x)  # level i: (B, width * 2^i, H / 2^i, W / 2^i)
        return features


def pixel_grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(1, H, W, 2) sampling grid of the pixel centres in grid_sample's [-1, 1] coordinates (x, y)."""
    ys = (torch.arange(height, device=like.device, dtype=torch.float32) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=like.device, dtype=torch.float32) * 2 + 1) / width - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)[None]


def warp_frame(frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``frame`` (B, C, H, W) by ``flow`` (B, 2, H, W) in pixels (dx, dy): out[p] = frame[p +
    flow].

    Bilinear, border padding (a pixel pulled from outside repeats the edge), align_corners=False; computed
    in float32 whatever the autocast dtype. Zero flow returns ``frame`` (pixel centres land on pixel centres).
    A non-finite flow counts as zero, and a flow is clipped to the frame's size: grid_sample then never
    sees NaN coordinates.
    """
    _, _, height, width = frame.shape
    limit = float(max(height, width))
    flow = torch.nan_to_num(flow.float(), nan=0.0, posinf=limit, neginf=-limit).clamp(-limit, limit)
    scale = flow.new_tensor([2.0 / width, 2.0 / height]).view(1, 2, 1, 1)  # pixels -> [-1, 1] units
    grid = pixel_grid(height, width, flow) + (flow * scale).permute(0, 2, 3, 1)  # (B, H, W, 2)
    return F.grid_sample(frame.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def blend(warped: torch.Tensor, generated: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mask * warped + (1 - mask) * generated; mask (B, 1, H, W) in [0, 1], images (B, 3, H, W)."""
    return mask * warped + (1.0 - mask) * generated


class WarpBlendHead(nn.Module):
    """Features (B, C, H, W) + generated RGB + previous frame -> frame: blend(warp(prev, flow), rgb, mask).

    A 3x3 convolution predicts the flow (2 channels, pixels) and the blend mask's logit (1 channel). Its
    weights and bias start at zero: flow 0 (the warp copies the previous frame) and mask 0.5 (half the
    copy, half the generated image), and the gradient reaches the flow from the first step (the input
    features are not zero).
    """

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.motion = nn.Conv2d(in_ch, 3, 3, padding=1)
        nn.init.zeros_(self.motion.weight)
        nn.init.zeros_(cast(torch.Tensor, self.motion.bias))  # Conv2d(..., bias=True) has one

    def forward(self, features: torch.Tensor, generated: torch.Tensor, prev_frame: torch.Tensor
                ) -> torch.Tensor:  # (B, C, H, W), (B, 3, H, W), (B, 3, H, W) -> (B, 3, H, W)
        motion = self.motion(features).float()  # (B, 3, H, W)
        flow, mask_logit = motion[:, :2], motion[:, 2:]
        return blend(warp_frame(prev_frame, flow), generated.float(), torch.sigmoid(mask_logit))


class SkipGenerator(nn.Module):
    """Fused features (B, D, H/d, W/d) + skip features of the previous frame and the next pose -> RGB frame.

    The fast preset's generator (three stages DCB(w) Res(w, w/2), the last log2(d) of them followed by 2x
    upsampling, widths D, D/2, D/4, D/8) with a merge after each upsampling: at scale H/2^l the features
    are concatenated with both pyramids' level-l features (at full resolution also the raw previous frame
    and pose) and reduced back by a residual block. The head is DCB(D/8), a 1x1 convolution to RGB and a
    sigmoid, then (``warp``) the :class:`WarpBlendHead`. The (H/d, W/d) scale needs no skip: the fusion
    there already sees the frame and pose encoders' features.
    """

    def __init__(self, in_ch: int, downsample: int, skip_widths: list[int], warp: bool = False) -> None:
        super().__init__()
        widths = [in_ch, in_ch // 2, in_ch // 4, in_ch // 8]
        halvings = downsample.bit_length() - 1  # log2: 1, 2, 4, 8 -> 0, 1, 2, 3
        merged = max(halvings, 1)  # scales /2^(merged-1) .. /1 get a merge (the lab's /1 too)
        if len(skip_widths) != merged:
            raise ValueError(f"downsample {downsample} needs {merged} skip levels, got {len(skip_widths)}")
        self.stages = nn.ModuleList()
        self.merges = nn.ModuleDict()
        for i in range(3):
            stage: list[nn.Module] = [DepthConvBlock(widths[i]), ResidualBlock(widths[i], widths[i + 1])]
            if i >= 3 - halvings:
                stage.append(upsample2x(widths[i + 1]))
            self.stages.append(nn.Sequential(*stage))
            level = 2 - i  # the pyramid level this stage ends at, when it has one
            if level < merged:
                extra = 2 * skip_widths[level] + (6 if level == 0 else 0)  # frame + pose (+ raw pixels at /1)
                self.merges[str(i)] = ResidualBlock(widths[i + 1] + extra, widths[i + 1])
        last = widths[3]
        self.head = DepthConvBlock(last)
        self.to_rgb = nn.Conv2d(last, 3, 1)
        self.warp = WarpBlendHead(last) if warp else None

    def forward(self, fused: torch.Tensor, prev_frame: torch.Tensor, next_pose: torch.Tensor,
                frame_skips: list[torch.Tensor], pose_skips: list[torch.Tensor]) -> torch.Tensor:
        x = fused  # (B, D, H/d, W/d)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if str(i) in self.merges:
                level = 2 - i
                parts = [x, frame_skips[level], pose_skips[level]]
                if level == 0:
                    parts += [prev_frame.to(x.dtype), next_pose.to(x.dtype)]
                x = self.merges[str(i)](torch.cat(parts, dim=1))  # (B, widths[i + 1], H/2^level, W/2^level)
        features = self.head(x)  # (B, D/8, H, W)
        rgb = torch.sigmoid(self.to_rgb(features))
        if self.warp is None:
            return rgb
        return self.warp(features, rgb, prev_frame)
