"""The course's submission CSV: one row per frame of every test sequence, the frame's pixels flattened."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from posevae.data.lab import TestSequence
from posevae.files import atomic_write

_CELL = [str(v) for v in range(256)]  # uint8 value -> its CSV text

# The course's submission (docs/course.md, "Submission"): 5 test sequences of 630 frames of 32x64 pixels
COURSE_SEQUENCES = 5
COURSE_FRAMES = 630
COURSE_FRAME_SIZE = (32, 64)  # (H, W)


def write_submission(path: str | Path, sequences: Sequence[torch.Tensor]) -> int:
    """Write the course's submission CSV (atomically); returns the number of rows.

    ``sequences``: one uint8 tensor (N, C, H, W) per test sequence, in sequence order. Header
    ``id,0,1,...,C*H*W-1``; row ``id`` = running frame number over all sequences (sequence-major), then
    the frame flattened in C, H, W order. 3,150 rows of 6,144 values take about a second.
    """
    if not sequences:
        raise ValueError("write_submission needs at least one sequence")
    n_values = sequences[0][0].numel()
    for s in sequences:
        if s.dtype != torch.uint8 or s.dim() != 4 or s[0].numel() != n_values:
            raise ValueError(f"write_submission needs uint8 (N, C, H, W) tensors of {n_values} values per "
                             f"frame, got {s.dtype} {tuple(s.shape)}")
    rows = 0

    def write(tmp: Path) -> None:
        nonlocal rows
        with open(tmp, "w", newline="", buffering=1 << 20) as f:
            f.write("id," + ",".join(map(str, range(n_values))) + "\n")
            for seq in sequences:
                # a lookup of 256 strings and one join per row: ~4x faster than np.savetxt's '%d' formatting
                for row in seq.reshape(seq.shape[0], -1).cpu().tolist():
                    f.write(f"{rows},{','.join([_CELL[v] for v in row])}\n")
                    rows += 1

    atomic_write(path, write)
    return rows


def course_shape_note(n_sequences: int, n_frames: int | Sequence[int],
                      frame_size: tuple[int, int] = COURSE_FRAME_SIZE) -> str | None:
    """One line when a submission of ``n_sequences`` sequences of ``n_frames`` frames (one number, or each
    sequence's) of ``frame_size`` (H, W) pixels is not the course's 5 x 630 frames of 32x64, so a short run
    (``--num_frames``, a small dataset) is never mistaken for one; None when it is the course's shape."""
    lengths = [n_frames] * n_sequences if isinstance(n_frames, int) else list(n_frames)
    if (n_sequences == COURSE_SEQUENCES and frame_size == COURSE_FRAME_SIZE
            and all(n == COURSE_FRAMES for n in lengths)):
        return None
    low, high = min(lengths, default=0), max(lengths, default=0)
    frames = f"{low}" if low == high else f"{low} to {high}"
    (H, W), (course_H, course_W) = frame_size, COURSE_FRAME_SIZE
    sequences = f"{n_sequences} sequence{'s' if n_sequences != 1 else ''}"
    return (f"submission.csv holds {sequences} of {frames} frames of {H}x{W} pixels, not the course's "
            f"{COURSE_SEQUENCES} x {COURSE_FRAMES} of {course_H}x{course_W}: not a course submission.")


def unequal_lengths(sequences: Sequence[TestSequence]) -> str | None:
    """None when every sequence has as many poses as the others; else a sentence naming the odd ones.

    The most common length is taken as the intended one (the course's 630), so one sequence with a
    missing pose image is named, not the four that are right.
    """
    lengths = [seq.labels.shape[0] for seq in sequences]
    if len(set(lengths)) <= 1:
        return None
    usual = Counter(lengths).most_common(1)[0][0]
    odd = [f"{seq.name} has {n} pose images in {seq.label_dir}"
           for seq, n in zip(sequences, lengths, strict=True) if n != usual]
    return f"Test sequence {'; '.join(odd)}, where the others have {usual}"
