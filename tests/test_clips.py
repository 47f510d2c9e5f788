"""The epoch's batches: gathered from a video on the device, they are the DataLoader's, in the same order."""

import pytest
import torch

from posevae.config import DataConfig, RunConfig, TrainConfig
from posevae.data.lab import ClipDataset, Video
from posevae.training.clips import DeviceBatches, VideoOnDevice
from posevae.training.loop import clip_loader, plan_epoch


def numbered_video(n: int = 50) -> Video:
    """Frame k is filled with k and its label with 255 - k, so a batch says which frames it holds."""
    frames = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 8).contiguous()
    return Video(frames=frames, labels=255 - frames, names=[f"{k}.png" for k in range(n)])


@pytest.mark.parametrize("stride,partial", [(None, 1.0), (3, 1.0), (None, 0.5)])
def test_batches_gathered_on_the_device_are_the_data_loaders(stride, partial):
    dataset = ClipDataset(numbered_video(), clip_len=6, stride=stride, partial=partial)
    cfg = RunConfig(data=DataConfig(train_vi_len=6),
                    train=TrainConfig(batch_size=2, num_epoch=3, kl_anneal_type="None"))
    on_device = VideoOnDevice.of(dataset.video, torch.device("cpu"))  # the GPU path, on the CPU
    for epoch in range(2):
        plan = plan_epoch(cfg, epoch)
        from_host = list(clip_loader(dataset, cfg, plan))
        gathered = clip_loader(dataset, cfg, plan, on_device)
        assert isinstance(gathered, DeviceBatches) and len(gathered) == len(from_host) == len(dataset) // 2
        for (frames, labels), (host_frames, host_labels) in zip(gathered, from_host, strict=True):
            assert frames.dtype == torch.uint8 and frames.shape == (2, 6, 3, 4, 8)
            assert torch.equal(frames, host_frames) and torch.equal(labels, host_labels)


def test_the_order_follows_the_epoch_seed():
    dataset = ClipDataset(numbered_video(), clip_len=5)
    cfg = RunConfig(train=TrainConfig(batch_size=3, num_epoch=3, kl_anneal_type="None"))
    on_device = VideoOnDevice.of(dataset.video, torch.device("cpu"))
    first = [f[:, 0, 0, 0, 0].tolist() for f, _ in clip_loader(dataset, cfg, plan_epoch(cfg, 0), on_device)]
    again = [f[:, 0, 0, 0, 0].tolist() for f, _ in clip_loader(dataset, cfg, plan_epoch(cfg, 0), on_device)]
    other = [f[:, 0, 0, 0, 0].tolist() for f, _ in clip_loader(dataset, cfg, plan_epoch(cfg, 1), on_device)]
    assert first == again != other
    starts = sorted(s for batch in first for s in batch)
    assert starts == sorted(set(starts)) and all(s % 5 == 0 for s in starts)  # whole clips, each once
