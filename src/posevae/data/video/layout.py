"""The lab layout written by ``posevae data from-video``: where the splits are cut, and writing them whole.

Splits come from separate time ranges of the extracted frames. The held-out ranges, in time order
``val, test 0, test 1, ...``, lie back to back at the end of the video (``cut="end"``), at its start
(``"start"``), or from a given frame on; each lies inside one segment (:mod:`.track`): a range that would
span a cut moves on to the next segment. Training takes every other frame of every segment, each stretch
trimmed to a whole number of clips (``clip_len``, the trainer's ``--train_vi_len``), so the trainer's
back-to-back clips ``[16i, 16i + 16)`` of the concatenated training video never span a cut or a held-out
range (with ``--stride`` or ``--partial`` unchanged).

Layout (that of ``posevae data demo``)::

    DIR/train/train_img/{k}.png  DIR/train/train_label/{k}.png   DIR/train/train_keypoints.npy
    DIR/val/val_img/{k}.png      DIR/val/val_label/{k}.png       DIR/val/val_keypoints.npy
    DIR/test/test_img/{i}/0.png  DIR/test/test_label/{i}/{k}.png DIR/test/test_gt/{i}/{k}.png
    DIR/test/test_keypoints/{i}.npy
    DIR/keypoints.json   joint names, limb pairs and colours
    DIR/from_video.json  the summary (detection rate, segments, splits, options); written last, so its
                         presence marks a finished folder

Keypoints are float32 (N, 18, 2) pixel (x, y) of the written frames, NaN for a joint left out. Everything
is written into a hidden folder beside DIR and renamed onto DIR at the end: an error leaves DIR as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from posevae.data.png import write_png
from posevae.data.skeleton import keypoint_spec
from posevae.errors import UserError
from posevae.files import atomic_folder

MARKER = "from_video.json"
MARKER_FORMAT = "posevae-from-video"
Range = tuple[int, int]  # half-open [start, end) of frame indices


@dataclass(frozen=True)
class SplitPlan:
    train: list[Range]  # each a whole number of clips
    val: Range
    tests: list[Range]

    def as_dict(self) -> dict:
        return {
            "train": [list(r) for r in self.train],
            "val": list(self.val),
            "test": [list(r) for r in self.tests],
        }


def _place(segments: list[Range], start: int, lengths: list[int]) -> list[Range] | None:
    """Ranges of ``lengths``, back to back from frame ``start`` on, each inside one segment; None if they
    do not fit."""
    ranges, pos = [], start
    for length in lengths:
        for a, b in segments:
            first = max(pos, a)
            if first + length <= b:
                ranges.append((first, first + length))
                pos = first + length
                break
        else:
            return None
    return ranges


def _place_from_end(segments: list[Range], lengths: list[int]) -> list[Range] | None:
    end = segments[-1][1]
    mirrored = [(end - b, end - a) for a, b in reversed(segments)]
    placed = _place(mirrored, 0, lengths[::-1])
    return None if placed is None else [(end - b, end - a) for a, b in reversed(placed)]


def _train_ranges(segments: list[Range], held_out: list[Range], clip_len: int) -> list[Range]:
    """The frames of ``segments`` outside ``held_out``, each stretch trimmed to a multiple of ``clip_len``."""
    out = []
    for a, b in segments:
        pos = a
        for c, d in sorted(r for r in held_out if r[0] < b and r[1] > a) + [(b, b)]:
            usable = (c - pos) // clip_len * clip_len
            if usable:
                out.append((pos, pos + usable))
            pos = max(pos, d)
    return out


def plan_splits(
    segments: list[Range], *, val_len: int, test_len: int, n_test: int, clip_len: int, cut: str | int
) -> SplitPlan | None:
    """Where val, the tests and train lie (see the module docstring); None when they do not fit."""
    if not segments:
        return None
    lengths = [val_len] + [test_len] * n_test
    if cut == "end":
        held = _place_from_end(segments, lengths)
    else:
        held = _place(segments, 0 if cut == "start" else int(cut), lengths)
    if held is None:
        return None
    train = _train_ranges(segments, held, clip_len)
    return SplitPlan(train, held[0], held[1:]) if train else None


def read_marker(root: Path) -> dict | None:
    try:
        data = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == MARKER_FORMAT else None


def check_target(out: Path) -> None:
    """``out`` must be missing, an empty folder, or an earlier from-video folder (replaced)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder: choose another --out.")
    if out.is_dir() and any(out.iterdir()) and read_marker(out) is None:
        raise UserError(
            f"{out} exists, is not empty and was not written by `posevae data from-video` (no "
            f"{MARKER}); refusing to overwrite it. Choose another --out, or remove the folder first."
        )


# renders one frame: (frame index) -> (image (H, W, 3) uint8, label (H, W, 3) uint8)
Render = Callable[[int], tuple[np.ndarray, np.ndarray]]


def _write_video(
    root: Path, img_dirs: list[str], label_dir: str, frames: Iterable[int], render: Render, bar: tqdm
) -> None:
    for d in img_dirs + [label_dir]:
        (root / d).mkdir(parents=True)
    for k, t in enumerate(frames):
        image, label = render(t)
        for d in img_dirs[: 2 if k == 0 else 1]:  # the second image folder takes frame 0 only (test_img)
            write_png(root / d / f"{k}.png", image)
        write_png(root / label_dir / f"{k}.png", label)
        bar.update()


def _write_splits(tmp: Path, plan: SplitPlan, render: Render, joints: np.ndarray, progress: bool) -> None:
    train = np.concatenate([np.arange(a, b) for a, b in plan.train])
    total = len(train) + (plan.val[1] - plan.val[0]) + sum(b - a for a, b in plan.tests)
    with tqdm(total=total, desc="writing frames", unit="frame", disable=not progress) as bar:
        _write_video(tmp, ["train/train_img"], "train/train_label", train, render, bar)
        np.save(tmp / "train/train_keypoints.npy", joints[train])
        _write_video(tmp, ["val/val_img"], "val/val_label", range(*plan.val), render, bar)
        np.save(tmp / "val/val_keypoints.npy", joints[plan.val[0] : plan.val[1]])
        (tmp / "test/test_keypoints").mkdir(parents=True)
        for i, (a, b) in enumerate(plan.tests):
            _write_video(
                tmp,
                [f"test/test_gt/{i}", f"test/test_img/{i}"],
                f"test/test_label/{i}",
                range(a, b),
                render,
                bar,
            )
            np.save(tmp / f"test/test_keypoints/{i}.npy", joints[a:b])


def write_layout(
    out: Path, plan: SplitPlan, render: Render, joints: np.ndarray, summary: dict, progress: bool
) -> None:
    """Write the splits of ``plan`` (frames and labels from ``render``, keypoints (N, J, 2) from ``joints``)
    and ``summary`` as the marker, all into a hidden folder beside ``out``, then rename it onto ``out``."""
    check_target(out)
    with atomic_folder(out) as tmp:
        _write_splits(tmp, plan, render, joints, progress)
        spec = keypoint_spec(summary.get("skeleton", "demo"))
        spec["coords"] = (
            "pixel (x, y) of the written frames, x to the right, y down, pixel centres at +0.5; NaN: left out"
        )
        (tmp / "keypoints.json").write_text(json.dumps(spec, indent=1))
        (tmp / MARKER).write_text(json.dumps({"format": MARKER_FORMAT, "version": 1, **summary}, indent=1))
        check_target(out)
