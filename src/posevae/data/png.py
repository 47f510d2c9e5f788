"""A small, fast PNG writer for 8-bit RGB frames (the demo renderer writes tens of thousands of them).

PIL's encoder spends most of its time on per-call overhead at 64x128; this writes the same standard
PNG (one IHDR, one IDAT with the Sub filter on every row, IEND) from numpy with zlib (run-length
strategy: faster and, on these smooth frames and mostly black labels, smaller than level 1). The bytes
depend only on the pixels and zlib, so renders are byte-identical run to run.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png(rgb: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 image."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {rgb.shape}")
    h, w, _ = rgb.shape
    rows = rgb.reshape(h, w * 3)
    raw = np.empty((h, w * 3 + 1), dtype=np.uint8)
    raw[:, 0] = 1  # filter type Sub: each byte minus the same channel of the pixel to its left
    raw[:, 1:4] = rows[:, :3]
    np.subtract(rows[:, 3:], rows[:, :-3], out=raw[:, 4:])  # uint8 arithmetic wraps mod 256, as PNG wants
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    comp = zlib.compressobj(level, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    idat = comp.compress(raw.tobytes()) + comp.flush()
    return _SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def write_png(path: str | Path, rgb: np.ndarray, level: int = 1) -> None:
    with open(path, "wb") as f:
        f.write(encode_png(rgb, level))
