"""Data: the course's LAB4_Dataset reader (:mod:`posevae.data.lab`) and its decoded-frame cache."""

from posevae.data.frame_cache import DEFAULT_CACHE_NAME, dataset_cache_dir
from posevae.data.lab import (
    ClipDataset,
    TestSequence,
    Video,
    load_test_sequences,
    load_val_video,
    load_video,
)

__all__ = [
    "DEFAULT_CACHE_NAME",
    "ClipDataset",
    "TestSequence",
    "Video",
    "dataset_cache_dir",
    "load_test_sequences",
    "load_val_video",
    "load_video",
]
