"""A tiny learnable dataset in the lab layout: a coloured block moving over a gradient; the pose image
marks the block's position. Written as PNGs so tests go through the real reader."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image


def render(k: int, H: int, W: int, phase: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    frame = np.zeros((H, W, 3), np.uint8)
    frame[..., 2] = np.linspace(40, 90, W, dtype=np.uint8)[None, :]
    x = int((W - 8) * (0.5 + 0.5 * math.sin(0.3 * k + phase)))
    y = int((H - 6) * (0.5 + 0.5 * math.cos(0.2 * k + phase)))
    frame[y:y + 6, x:x + 8] = (230, 150, 40)
    pose = np.zeros((H, W, 3), np.uint8)
    pose[y + 2:y + 4, x + 3:x + 5] = (0, 255, 0)
    return frame, pose


def write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_lab_dataset(root: Path, n_train: int = 96, n_val: int = 24, n_test: int = 2, test_len: int = 12,
                     H: int = 16, W: int = 32) -> Path:
    for split, n, phase in (("train", n_train, 0.0), ("val", n_val, 1.0)):
        for k in range(n):
            frame, pose = render(k, H, W, phase)
            write(root / split / f"{split}_img" / f"{k}.png", frame)
            write(root / split / f"{split}_label" / f"{k}.png", pose)
    for i in range(n_test):
        for k in range(test_len):
            frame, pose = render(k, H, W, 2.0 + i)
            if k == 0:
                write(root / "test" / "test_img" / str(i) / "0.png", frame)
            write(root / "test" / "test_label" / str(i) / f"{k}.png", pose)
            write(root / "test" / "test_gt" / str(i) / f"{k}.png", frame)
    return root
