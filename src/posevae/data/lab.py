"""Reader of the course's "LAB4_Dataset" layout (``--DR``)::

    DR/train/train_img/*.png         DR/train/train_label/*.png      one long video and its poses
    DR/val/val_img/*.png             DR/val/val_label/*.png          the validation video
    DR/test/test_img/<i>/*.png       DR/test/test_label/<i>/*.png    one first frame + N poses per sequence
    DR/test/test_gt/<i>/*.png        (optional) the N true frames of sequence i; frame 0 is the first frame

Rules (the course's, docs/course.md):

- Files are ordered by the integer in their name, not by string order: ``2.png`` before ``10.png``; an
  optional ``frame`` prefix is allowed (``frame12.png`` is 12). When a name holds several integers the last
  one counts (``seq1_frame12.png`` is 12). A PNG name without an integer, or two names with the same
  integer, is an error.
- A frame's label is the file of the same name in ``{split}_label`` (the frame's path with ``{split}_img``
  swapped for ``{split}_label``). Unpaired files are an error.
- Images are decoded with PIL and converted to RGB (grayscale, palette and RGBA images are converted, the
  alpha channel dropped, as the lab's ``default_loader`` does; one warning per split says how many). They
  are resized to ``frame_H x frame_W`` only when their size differs, with PIL ``BILINEAR``: that is what the
  lab's ``transforms.Resize`` does on PIL images, and PIL widens the filter when downscaling, so a
  downscale is anti-aliased (an average over the source pixels) rather than a point sample. All images of
  a split (of a test sequence) must have one size; a different one means files of another dataset got in.
- Everything is kept as uint8 tensors ``(N, 3, H, W)``; conversion to float happens on the device.
- Decoded pixels are cached (:mod:`posevae.data.frame_cache`), by default in ``DR/.posevae_cache``, the only
  thing ever written under ``DR``.

Every problem with the files raises :class:`~posevae.errors.UserError` naming the files and the fix.
"""

from __future__ import annotations

import logging
import os
import re
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Literal, cast

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from posevae.data.frame_cache import cached_array, dataset_cache_dir
from posevae.errors import UserError

log = logging.getLogger(__name__)

Split = Literal["train", "val"]

LAYOUT_HINT = (
    "--DR must hold the course's LAB4_Dataset layout: train/train_img/*.png with train/train_label/*.png, "
    "val/val_img/*.png with val/val_label/*.png, test/test_img/<i>/*.png with test/test_label/<i>/*.png."
)
PROGRESS_MIN_FILES = 500  # show a progress bar when decoding more images than this
_THREAD_MIN_FILES = 256  # decode in threads above this many images (PIL releases the GIL while decoding)
_MAX_LISTED = 5  # offending files named in one message


@dataclass
class Video:
    """One video of the dataset and its pose images, in frame order."""

    frames: torch.Tensor  # (N, 3, H, W) uint8
    labels: torch.Tensor  # (N, 3, H, W) uint8; labels[k] is the pose of frames[k]
    names: list[str]  # frame file names, in order
    source: Path | None = None  # the folder the frames came from (for messages)

    def __len__(self) -> int:
        return int(self.frames.shape[0])


@dataclass
class TestSequence:
    """One test sequence: the given first frame, the poses to follow and, if present, the true frames."""

    __test__ = False  # not a pytest test class, despite its name

    name: str  # the sub-folder name under test_img / test_label
    first_frame: torch.Tensor  # (3, H, W) uint8
    labels: torch.Tensor  # (N, 3, H, W) uint8; labels[0] is the pose of the first frame
    truth: torch.Tensor | None  # (N, 3, H, W) uint8 from test_gt/<name>, or None
    label_dir: Path


# --------------------------------------------------------------------------------------------- listing

_FRAME_NAME = re.compile(r"(?i)frame[ _\-]*(\d+)")


def _index_of(name: str) -> int | None:
    """The number a file (or folder) is ordered by: ``frame12.png`` -> 12, ``2.png`` -> 2; None if none."""
    stem = name[:-4] if name.lower().endswith(".png") else name
    if stem.isdigit():  # the common case, fast for 46k files
        return int(stem)
    m = _FRAME_NAME.fullmatch(stem)
    if m:
        return int(m.group(1))
    digits = re.findall(r"\d+", stem)
    return int(digits[-1]) if digits else None


def _listing(names: list[str], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" ... ({len(names) - limit} more)" if len(names) > limit else "")


def _order_numerically(folder: Path, names: list[str], what: str) -> list[str]:
    """Sort names by their integer; UserError for names without one and for two names with the same one."""
    indexed = [(_index_of(n), n) for n in names]
    bad = sorted(n for i, n in indexed if i is None)
    if bad:
        raise UserError(
            f"Cannot order {len(bad)} {what} in {folder} because their names hold no number: "
            f"{_listing(bad)}. "
            "Names are ordered by the number in them (e.g. 12.png, frame12.png, or a folder 3); rename or "
            "remove them."
        )
    indexed.sort()
    for (i, a), (j, b) in pairwise(indexed):
        if i == j:
            raise UserError(
                f"{folder / a} and {folder / b} both have number {i}, so their order is ambiguous: "
                "rename or remove one of them."
            )
    return [n for _, n in indexed]


def _require_dirs(folders: list[tuple[Path, str]]) -> None:
    missing = [(f, what) for f, what in folders if not f.is_dir()]
    if missing:
        listed = "; ".join(f"{f} ({what})" for f, what in missing)
        raise UserError(f"Missing folder(s): {listed}. {LAYOUT_HINT}")


def _require_root(DR: Path) -> None:
    if not DR.is_dir():
        raise UserError(
            f"Dataset root --DR {DR} does not exist or is not a folder: pass the folder that holds train/, "
            "val/ and test/ (the course's LAB4_Dataset)."
        )


@dataclass(frozen=True, slots=True)
class PngFile:
    """One listed PNG. Paths are strings: pathlib costs seconds on the lab's 46,820 files."""

    path: str  # full path
    rel: str  # path relative to the dataset root, POSIX form (the cache key uses it)
    name: str
    size: int
    mtime_ns: int

    @property
    def source(self) -> tuple[str, int, int]:
        return (self.rel, self.size, self.mtime_ns)


def list_pngs(folder: Path, what: str, root: Path) -> list[PngFile]:
    """The PNG files of ``folder`` in numeric order (hidden files and other files are ignored)."""
    found: dict[str, tuple[int, int]] = {}
    others = []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith(".") or not e.is_file():
                continue
            if e.name.lower().endswith(".png"):
                st = e.stat()
                found[e.name] = (st.st_size, st.st_mtime_ns)
            else:
                others.append(e.name)
    if others and not found:
        log.warning(
            "%s holds no PNG but %d other files (e.g. %s); only PNG files are read",
            folder,
            len(others),
            sorted(others)[0],
        )
    base = os.fspath(folder) + os.sep
    rel_base = Path(os.path.relpath(folder, root)).as_posix() + "/"
    ordered = _order_numerically(folder, list(found), what)
    return [PngFile(base + n, rel_base + n, n, *found[n]) for n in ordered]


def _list_subdirs(folder: Path) -> dict[str, Path]:
    """Sub-folders of ``folder`` (not hidden) in numeric order of their names."""
    with os.scandir(folder) as it:
        names = [e.name for e in it if e.is_dir() and not e.name.startswith(".")]
    return {n: folder / n for n in _order_numerically(folder, names, "sequence folders")}


# -------------------------------------------------------------------------------------------- decoding


def to_rgb_array(im: Image.Image, frame_H: int, frame_W: int) -> np.ndarray:
    """An opened image as (frame_H, frame_W, 3) uint8 RGB: any mode converted (16-bit grey scaled down, since
    PIL's convert would clip it at 255), resized bilinearly when its size differs."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L"):
        grey = np.asarray(im).astype(np.float32) / 257.0
        rgb = Image.fromarray(np.clip(grey + 0.5, 0, 255).astype(np.uint8), mode="L").convert("RGB")
    else:
        rgb = im.convert("RGB") if im.mode != "RGB" else im
    if rgb.size != (frame_W, frame_H):
        rgb = rgb.resize((frame_W, frame_H), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


LAB_IMAGE_FIX = "Re-export or delete it (and its frame/label partner)."


def decode_image(
    path: str | Path, frame_H: int, frame_W: int, fix: str = LAB_IMAGE_FIX
) -> tuple[np.ndarray, tuple[int, int], bool]:
    """Decode one PNG: ((frame_H, frame_W, 3) uint8, its size on disk as (W, H), whether it was not RGB).

    A corrupt file is a UserError naming it, followed by ``fix`` (what the user should do about it).
    """
    try:
        with Image.open(path) as im:
            im.load()  # decode now: a truncated or corrupt file fails here, not later
            size = im.size
            converted = im.mode != "RGB"
            arr = to_rgb_array(im, frame_H, frame_W)
    except FileNotFoundError:
        raise UserError(
            f"Image {path} disappeared while the dataset was read: is another program changing "
            "the dataset? Run again once it is stable."
        ) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        detail = str(e).replace(f" '{path}'", "")  # PIL repeats the path in some messages
        raise UserError(
            f"Cannot read image {path} ({e.__class__.__name__}: {detail}): the file is corrupt or not a PNG. "
            + fix
        ) from None
    if arr.shape != (frame_H, frame_W, 3):  # e.g. a 16-bit or exotic mode PIL could not convert cleanly
        raise UserError(f"Cannot convert image {path} (mode {im.mode}) to RGB: re-export it as 8-bit RGB.")
    return arr, size, converted


def decode_images(
    paths: list[str], frame_H: int, frame_W: int, desc: str, progress: bool = True, fix: str = LAB_IMAGE_FIX
) -> tuple[np.ndarray, int]:
    """Decode ``paths`` into one (n, 3, H, W) uint8 array; returns it and how many images were converted.

    A progress bar shows for more than PROGRESS_MIN_FILES images unless ``progress`` is False.

    Raises UserError when the images do not all have the size of the first one.
    """
    n = len(paths)
    out = np.empty((n, 3, frame_H, frame_W), dtype=np.uint8)
    sizes: list[tuple[int, int] | None] = [None] * n

    def work(lo_hi: tuple[int, int]) -> int:
        converted = 0
        for i in range(*lo_hi):
            arr, sizes[i], conv = decode_image(paths[i], frame_H, frame_W, fix)
            out[i] = arr.transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)
            converted += conv
        return converted

    chunk = 128
    chunks = [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
    workers = min(8, os.cpu_count() or 1) if n > _THREAD_MIN_FILES else 1
    t0 = time.perf_counter()
    converted = 0
    with tqdm(total=n, desc=desc, unit="img", disable=not progress or n <= PROGRESS_MIN_FILES,
              leave=False) as bar:
        if workers == 1:
            results = map(work, chunks)
            for (lo, hi), c in zip(chunks, results, strict=True):
                converted += c
                bar.update(hi - lo)
        else:
            pool = ThreadPoolExecutor(workers)
            try:
                # map yields in order, so the first broken file (in file order) is the one reported
                for (lo, hi), c in zip(chunks, pool.map(work, chunks), strict=True):
                    converted += c
                    bar.update(hi - lo)
            finally:  # on an error, do not decode the rest of the split before reporting it
                pool.shutdown(wait=True, cancel_futures=True)
    log.info("%s: decoded %d images in %.1f s", desc, n, time.perf_counter() - t0)

    decoded = cast(list[tuple[int, int]], sizes)  # every slot is filled by now
    first = decoded[0]
    for p, s in zip(paths, decoded, strict=True):
        if s != first:
            raise UserError(
                f"Images of different sizes in one split (or test sequence): {paths[0]} is "
                f"{first[0]}x{first[1]} (WxH) but {p} is {s[0]}x{s[1]}. All frames and labels of a split "
                "must have one size; re-export the odd files at the same size or remove them (they may "
                "belong to another dataset)."
            )
    return out, converted


def warn_converted(n_converted: int, n_total: int, where: str) -> None:
    """One warning for a folder whose images were converted to RGB (not one per image)."""
    if n_converted:
        warnings.warn(
            f"{n_converted} of {n_total} images in {where} were not RGB (grayscale, palette or RGBA) and "
            "were converted to RGB (alpha dropped).",
            UserWarning,
            stacklevel=3,
        )


def _check_size(frame_H: int, frame_W: int) -> None:
    if not (isinstance(frame_H, int) and isinstance(frame_W, int) and frame_H > 0 and frame_W > 0):
        raise UserError(f"--frame_H and --frame_W must be positive integers, got {frame_H!r} x {frame_W!r}.")


def _cache_folder(DR: Path, cache_dir: str | Path | None) -> Path:
    return dataset_cache_dir(DR) if cache_dir is None else Path(cache_dir)


# ------------------------------------------------------------------------------------------ train / val


def load_video(
    DR: str | Path,
    split: Split,
    frame_H: int,
    frame_W: int,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Video:
    """Load ``DR/{split}/{split}_img`` and its labels as one :class:`Video` of uint8 (N, 3, H, W) tensors.

    ``cache_dir`` (default ``DR/.posevae_cache``) holds the decoded pixels for the next call; ``progress``
    False hides the decoding bar.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    _check_size(frame_H, frame_W)
    DR = Path(DR)
    _require_root(DR)
    img_dir = DR / split / f"{split}_img"
    lbl_dir = DR / split / f"{split}_label"
    _require_dirs([(img_dir, f"the {split} frames"), (lbl_dir, f"the {split} pose labels")])
    frames, labels = _paired_files(DR, split, img_dir, lbl_dir)
    files = frames + labels
    n = len(frames)
    converted = [0]

    def build() -> np.ndarray:
        arr, converted[0] = decode_images(
            [p.path for p in files], frame_H, frame_W, desc=f"decoding {split} ({n} frames + {n} labels)",
            progress=progress,
        )
        return arr.reshape(2, n, 3, frame_H, frame_W)

    arr = cached_array(_cache_folder(DR, cache_dir), split, DR, [p.source for p in files], frame_H, frame_W,
                       (2, n, 3, frame_H, frame_W), build)
    warn_converted(converted[0], 2 * n, f"{img_dir} and {lbl_dir}")
    both = torch.from_numpy(arr)  # (2, N, 3, H, W), no copy
    return Video(frames=both[0], labels=both[1], names=[p.name for p in frames], source=img_dir)


def _paired_files(DR: Path, split: str, img_dir: Path, lbl_dir: Path) -> tuple[list[PngFile], list[PngFile]]:
    """The frames of ``img_dir`` in numeric order and their labels in the same order; UserError when the split
    is empty or a frame has no label of the same name (or a label no frame)."""
    frames = list_pngs(img_dir, f"{split} frames", DR)
    labels = list_pngs(lbl_dir, f"{split} labels", DR)
    if not frames and not labels:
        raise UserError(f"The {split} split is empty: no PNG files in {img_dir} or {lbl_dir}. {LAYOUT_HINT}")
    labels_by_name = {p.name: p for p in labels}
    frame_names = {p.name for p in frames}
    no_label = [p.name for p in frames if p.name not in labels_by_name]
    no_frame = [p.name for p in labels if p.name not in frame_names]
    if no_label or no_frame:
        parts = []
        if no_label:
            parts.append(
                f"{len(no_label)} frame(s) in {img_dir} have no label of the same name in "
                f"{lbl_dir}: {_listing(no_label)}"
            )
        if no_frame:
            parts.append(
                f"{len(no_frame)} label(s) in {lbl_dir} have no frame of the same name in "
                f"{img_dir}: {_listing(no_frame)}"
            )
        raise UserError(
            "; ".join(parts) + ". Every frame needs the label file of the same name: add the missing files "
            "or delete the unmatched ones."
        )
    return frames, [labels_by_name[p.name] for p in frames]  # the label order is the frame order


def load_val_video(
    DR: str | Path,
    frame_H: int,
    frame_W: int,
    val_vi_len: int,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Video:
    """The first ``val_vi_len`` frames of the validation video (the lab validates on one 630-frame video)."""
    video = load_video(DR, "val", frame_H, frame_W, cache_dir, progress=progress)
    n = len(video)
    if n < val_vi_len:
        raise UserError(
            f"The val video in {video.source} has {n} frames, --val_vi_len asks for {val_vi_len}; "
            f"lower --val_vi_len to at most {n} (or add frames)."
        )
    return Video(
        frames=video.frames[:val_vi_len],
        labels=video.labels[:val_vi_len],
        names=video.names[:val_vi_len],
        source=video.source,
    )


class ClipDataset(torch.utils.data.Dataset):
    """Contiguous clips of a video, as the lab trains on: item i is (frames, labels)[s : s + clip_len].

    The clip starts are ``s = i * stride``.

    Only the first ``int(N * partial)`` frames are used and a clip must fit entirely, so the length is
    ``(n_used - clip_len) // stride + 1`` (``int(N * partial) // clip_len`` for the lab's non-overlapping
    default ``stride = clip_len``). Items are uint8 tensors (clip_len, 3, H, W), views into the video.
    """

    def __init__(self, video: Video, clip_len: int, stride: int | None = None, partial: float = 1.0) -> None:
        if clip_len < 1:
            raise UserError(f"The clip length (--train_vi_len) must be >= 1, got {clip_len}.")
        stride = clip_len if stride is None else stride
        if stride < 1:
            raise UserError(f"--stride must be >= 1, got {stride}.")
        if not 0 < partial <= 1:
            raise UserError(f"--partial must be in (0, 1], got {partial}.")
        self.video = video
        self.clip_len = clip_len
        self.stride = stride
        self.partial = partial
        n = len(video)
        self.n_used = int(n * partial)
        self._len = max(0, (self.n_used - clip_len) // stride + 1) if self.n_used >= clip_len else 0
        if self._len == 0:
            where = f" in {video.source}" if video.source is not None else ""
            raise UserError(
                f"The split{where} has too few frames for one clip: {n} frames, {self.n_used} used with "
                f"--partial {partial}, but a clip needs {clip_len} (--train_vi_len). Lower --train_vi_len, "
                "raise --partial or add frames."
            )

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"clip {i} out of range for {self._len} clips")
        s = i * self.stride
        return self.video.frames[s : s + self.clip_len], self.video.labels[s : s + self.clip_len]


# ------------------------------------------------------------------------------------------------ test


def load_test_sequences(
    DR: str | Path,
    frame_H: int,
    frame_W: int,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> list[TestSequence]:
    """All test sequences of ``DR/test``, ordered by the number of their folder name.

    Each has the first frame (the lowest-numbered image of ``test_img/<i>``), the N pose images of
    ``test_label/<i>`` and, when ``test_gt/<i>`` exists, its N true frames.
    """
    _check_size(frame_H, frame_W)
    DR = Path(DR)
    _require_root(DR)
    folders = _test_folders(DR)
    cache = _cache_folder(DR, cache_dir)
    decoded = _DecodeCount()  # over the sequences decoded in this call (not the cached ones)
    sequences = []
    for name, lbl_dir in folders.labels.items():
        files = _sequence_files(DR, name, folders.images[name], lbl_dir, folders.truth.get(name))
        sequences.append(_load_sequence(DR, name, lbl_dir, files, frame_H, frame_W, cache, decoded, progress))
    warn_converted(decoded.converted, decoded.images, str(DR / "test"))
    return sequences


@dataclass
class _TestFolders:
    """The sequence folders of DR/test by name: first frames, pose images and (where there are any) true
    frames."""

    images: dict[str, Path]
    labels: dict[str, Path]
    truth: dict[str, Path]


def _test_folders(DR: Path) -> _TestFolders:
    """The sequence folders of test_img, test_label and test_gt; UserError when a sequence has a first frame
    but no poses or the other way round, one warning for sequences without ground truth."""
    img_root, lbl_root, gt_root = (DR / "test" / f"test_{kind}" for kind in ("img", "label", "gt"))
    _require_dirs([(img_root, "one folder per test sequence with its first frame"),
                   (lbl_root, "one folder per test sequence with its pose images")])
    img_dirs, lbl_dirs = _list_subdirs(img_root), _list_subdirs(lbl_root)
    if not lbl_dirs and not img_dirs:
        raise UserError(f"The test split is empty: no sequence folders in {img_root} or {lbl_root}. "
                        f"{LAYOUT_HINT}")
    no_first = [n for n in lbl_dirs if n not in img_dirs]
    if no_first:
        raise UserError(
            f"Test sequence(s) {_listing(no_first)} have poses in {lbl_root} but no folder in {img_root} "
            f"(expected e.g. {img_root / no_first[0]}/ with the first frame): add the first frame or remove "
            f"{lbl_root / no_first[0]}."
        )
    no_labels = [n for n in img_dirs if n not in lbl_dirs]
    if no_labels:
        raise UserError(
            f"Test sequence(s) {_listing(no_labels)} have a first frame in {img_root} but no poses in "
            f"{lbl_root} (expected e.g. {lbl_root / no_labels[0]}/*.png): add the pose images or remove "
            f"{img_root / no_labels[0]}."
        )
    gt_dirs = _list_subdirs(gt_root) if gt_root.is_dir() else {}
    no_gt = [n for n in lbl_dirs if gt_root.is_dir() and n not in gt_dirs]
    if no_gt:
        warnings.warn(
            f"{gt_root} has no ground truth for test sequence(s) {_listing(no_gt)}; they are "
            "loaded without it (truth=None).",
            UserWarning,
            stacklevel=3,
        )
    return _TestFolders(img_dirs, lbl_dirs, gt_dirs)


@dataclass
class _SequenceFiles:
    first: PngFile  # the lowest-numbered image of test_img/<name>
    labels: list[PngFile]
    truth: list[PngFile]  # empty without ground truth


def _sequence_files(DR: Path, name: str, img_dir: Path, lbl_dir: Path, gt_dir: Path | None) -> _SequenceFiles:
    """The files of one test sequence; UserError when it has no first frame or no poses, or when its ground
    truth does not match its poses one to one."""
    firsts = list_pngs(img_dir, "first frames", DR)
    if not firsts:
        raise UserError(
            f"Test sequence {name} has no first frame: {img_dir} holds no PNG. Put the "
            "sequence's first frame there (e.g. 0.png) or remove the sequence."
        )
    labels = list_pngs(lbl_dir, "test labels", DR)
    if not labels:
        raise UserError(
            f"Test sequence {name} has no poses: {lbl_dir} holds no PNG. Add the pose images "
            "or remove the sequence."
        )
    truth: list[PngFile] = []
    if gt_dir is not None:
        truth = list_pngs(gt_dir, "ground-truth frames", DR)
        if len(truth) != len(labels):
            raise UserError(
                f"Test sequence {name}: {gt_dir} has {len(truth)} ground-truth frames but "
                f"{lbl_dir} has {len(labels)} poses; they must match one to one (frame 0 = the first "
                f"frame). Re-export {gt_dir} or delete it to test without ground truth."
            )
    return _SequenceFiles(firsts[0], labels, truth)


@dataclass
class _DecodeCount:
    images: int = 0  # decoded (not read from the cache)
    converted: int = 0  # of those, not RGB


def _load_sequence(DR: Path, name: str, lbl_dir: Path, files: _SequenceFiles, frame_H: int, frame_W: int,
                   cache: Path | None, decoded: _DecodeCount, progress: bool) -> TestSequence:
    """One test sequence, decoded (or read from the cache) as one array: first frame, poses, truth."""
    listed = [files.first, *files.labels, *files.truth]
    n, m = len(files.labels), len(files.truth)

    def build() -> np.ndarray:
        arr, converted = decode_images([p.path for p in listed], frame_H, frame_W,
                                       desc=f"decoding test sequence {name}", progress=progress)
        decoded.converted += converted
        decoded.images += len(listed)
        return arr

    arr = torch.from_numpy(cached_array(cache, f"test_{name}", DR, [p.source for p in listed], frame_H,
                                        frame_W, (1 + n + m, 3, frame_H, frame_W), build))
    return TestSequence(name=name, first_frame=arr[0], labels=arr[1 : 1 + n],
                        truth=arr[1 + n :] if m else None, label_dir=lbl_dir)
