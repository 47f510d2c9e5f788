"""The epoch's batches of training clips, from host memory (a DataLoader) or gathered on the GPU.

On a CPU a DataLoader slices each batch out of the decoded video in host memory. On a GPU the whole decoded
video (uint8 frames and pose images, about 290 MB for the course's 23,410 frames at 32x64) is copied to the
device once, and every batch is gathered there by index: no copy from the host per step. Both walk the clips
in the order of the same sampler (the epoch's seeded RandomSampler, or torchrun's DistributedSampler), so a
run sees the same batches either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import BatchSampler, Sampler

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
    """Batches (B, T, 3, H, W) uint8 of a ClipDataset's clips, gathered from a VideoOnDevice in the order of
    ``sampler``; the last incomplete batch is dropped, as the DataLoader does."""

    def __init__(self, dataset: ClipDataset, video: VideoOnDevice, sampler: Sampler[int], batch_size: int):
        self.dataset, self.video, self.sampler, self.batch_size = dataset, video, sampler, batch_size

    def __len__(self) -> int:
        return len(BatchSampler(self.sampler, self.batch_size, drop_last=True))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = self.video.frames.device
        # the epoch's clip order, sent to the device once: (batches, B) clip indices
        order = torch.tensor(list(BatchSampler(self.sampler, self.batch_size, drop_last=True)),
                             dtype=torch.long).reshape(-1, self.batch_size).to(device)
        offsets = torch.arange(self.dataset.clip_len, device=device)
        for clips in order:
            frame_index = clips[:, None] * self.dataset.stride + offsets  # (B, T)
            yield self.video.frames[frame_index], self.video.labels[frame_index]
