"""The epoch's batches of training clips, from host memory (a DataLoader) or gathered on the GPU.

On a CPU a DataLoader slices each batch out of the decoded video in host memory. On a GPU the whole decoded
video (uint8 frames and pose images, about 290 MB for the course's 23,410 frames at 32x64) is copied to the
device once, and every batch is gathered there by index: no copy from the host per step. The clip indices of
the batches come from a DataLoader over the indices with the sampling of the one over the clips (the epoch's
seeded shuffle, or torchrun's DistributedSampler), so a run sees the same batches either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass

import torch

from posevae.data.lab import ClipDataset, Video


@dataclass(frozen=True)
class VideoOnDevice:
    """A training video's frames and pose images, uint8 (N, 3, H, W), on the training device."""

    frames: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def of(cls, video: Video, device: torch.device) -> VideoOnDevice:
        return cls(video.frames.to(device), video.labels.to(device))


class DeviceBatches:
    """Batches (B, T, 3, H, W) uint8 of a ClipDataset's clips, gathered from a VideoOnDevice; ``order`` yields
    each batch's clip indices (B,), e.g. a DataLoader over ``range(len(dataset))``."""

    def __init__(self, dataset: ClipDataset, video: VideoOnDevice, order: Iterable[torch.Tensor]) -> None:
        self.dataset, self.video, self.order = dataset, video, order

    def __len__(self) -> int:
        return len(self.order) if isinstance(self.order, Sized) else 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = self.video.frames.device
        batches = list(self.order)
        if not batches:
            return
        clips = torch.stack(batches).to(device)  # (batches, B): the epoch's clip order, to the device once
        offsets = torch.arange(self.dataset.clip_len, device=device)
        for batch in clips:
            frame_index = batch[:, None] * self.dataset.stride + offsets  # (B, T)
            yield self.video.frames[frame_index], self.video.labels[frame_index]
