"""Decoded-frame cache: decode a folder of PNGs once, keep the pixels as one uint8 ``.npy`` file.

Decoding the lab's 23,410 training pairs takes seconds to minutes; loading the cached array takes a
fraction of a second. An entry is keyed by a SHA-256 of (format version, tag, frame size, and for every
source file its path relative to the dataset root, byte size and ``mtime_ns``), so editing, touching,
adding, removing or renaming any source file makes a new key and the PNGs are decoded again. Moving the
whole dataset keeps the relative names (and ``mv`` keeps mtimes), so the cache stays valid.

Layout of a cache folder (default ``DR/.posevae_cache``; the only thing posevae ever writes under DR)::

    <tag>-<H>x<W>-<key>.npy    the pixels, uint8, shape chosen by the caller (e.g. (2, N, 3, H, W))
    <tag>-<H>x<W>-<key>.json   what the entry is (tag, dataset root, size, shape); written after the .npy

Writes go through :func:`posevae.files.atomic_open` (a temporary file of a unique name in the cache
folder, renamed in place), so a reader never sees half a file, and two processes filling the same entry do
not clash. When a new entry is written, older entries of the same tag, frame size and dataset root are
deleted (they can never be hit again). If the folder cannot be written, the data is used uncached and one
warning says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from posevae.files import atomic_open, remove_temp_files

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the decoding (resize filter, colour conversion, array layout) changes
DEFAULT_CACHE_NAME = ".posevae_cache"
_STALE_TMP_S = 3600.0  # temporary files older than this are leftovers of a killed writer


def dataset_cache_dir(DR: str | Path) -> Path:
    """The cache folder used when none is given: ``DR/.posevae_cache``."""
    return Path(DR) / DEFAULT_CACHE_NAME


FileStamp = tuple[str, int, int]  # (path relative to the dataset root, in POSIX form; byte size; mtime_ns)


def fingerprint(root: Path, paths: Sequence[Path]) -> list[FileStamp]:
    """The (relative name, size, mtime_ns) of each path, for callers that did not stat while listing."""
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((Path(os.path.relpath(p, root)).as_posix(), st.st_size, st.st_mtime_ns))
    return out


def cache_key(tag: str, sources: Sequence[FileStamp], frame_H: int, frame_W: int) -> str:
    """SHA-256 (hex) of the format version, tag, size and (relative name, size, mtime_ns) of every source.

    The order of ``sources`` is part of the key (it is the order of the cached frames).
    """
    h = hashlib.sha256()
    h.update(f"posevae-frames v{CACHE_VERSION}\0{tag}\0{frame_H}x{frame_W}\0{len(sources)}\n".encode())
    h.update("".join(f"{rel}\0{size}\0{mtime_ns}\n" for rel, size, mtime_ns in sources).encode())
    return h.hexdigest()


def _stem(tag: str, frame_H: int, frame_W: int, key: str) -> str:
    safe_tag = re.sub(r"[^A-Za-z0-9_.]+", "_", tag)
    return f"{safe_tag}-{frame_H}x{frame_W}-{key[:24]}"


def _try_load(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached array, or None when absent, unreadable or of another shape/dtype (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        log.warning("ignoring unreadable cache file %s (%s); decoding again", path, e)
        return None
    if arr.dtype != np.uint8 or tuple(arr.shape) != tuple(shape):
        log.warning(
            "ignoring cache file %s of shape %s %s (expected %s uint8); decoding again",
            path,
            arr.shape,
            arr.dtype,
            shape,
        )
        return None
    return arr


def _remove_superseded(
    cache_dir: Path, keep_stem: str, tag: str, root: Path, frame_H: int, frame_W: int
) -> None:
    """Delete older entries of the same (tag, dataset root, size) and stale temporary files. Best effort."""
    remove_temp_files(cache_dir, _STALE_TMP_S)
    for p in cache_dir.iterdir():
        try:
            if p.suffix != ".json" or p.stem == keep_stem:
                continue
            meta = json.loads(p.read_text())
            if (
                meta.get("tag") == tag
                and meta.get("root") == str(root)
                and meta.get("frame_H") == frame_H
                and meta.get("frame_W") == frame_W
            ):
                p.with_suffix(".npy").unlink(missing_ok=True)
                p.unlink(missing_ok=True)
        except (OSError, ValueError):
            continue


def cached_array(
    cache_dir: Path | None,
    tag: str,
    root: Path,
    sources: Sequence[FileStamp],
    frame_H: int,
    frame_W: int,
    shape: tuple[int, ...],
    build: Callable[[], np.ndarray],
) -> np.ndarray:
    """The uint8 array of ``shape`` decoded from ``sources``: from the cache if there, else ``build()``.

    ``sources`` are the files the array is decoded from, with their size and mtime_ns (see
    :func:`fingerprint`); ``root`` is the dataset root, recorded so that superseded entries can be removed.

    ``cache_dir=None`` disables caching. A freshly built array is stored (atomically) for the next call;
    when the cache folder cannot be created or written, one warning is emitted and the array is returned
    uncached.
    """
    if cache_dir is None:
        return build()
    cache_dir = Path(cache_dir)
    root = Path(root).resolve()
    key = cache_key(tag, sources, frame_H, frame_W)
    stem = _stem(tag, frame_H, frame_W, key)
    npy = cache_dir / f"{stem}.npy"

    arr = _try_load(npy, shape)
    if arr is not None:
        log.info("loaded %s (%s) from cache %s", tag, "x".join(map(str, shape)), npy)
        return arr

    arr = build()
    if arr.dtype != np.uint8 or tuple(arr.shape) != tuple(shape):  # a bug in the caller, not the user's data
        raise AssertionError(f"cache build for {tag} gave {arr.shape} {arr.dtype}, expected {shape} uint8")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with atomic_open(npy) as f:
            np.save(f, arr, allow_pickle=False)
        meta = {
            "version": CACHE_VERSION,
            "tag": tag,
            "root": str(root),
            "frame_H": frame_H,
            "frame_W": frame_W,
            "shape": list(shape),
            "n_sources": len(sources),
            "key": key,
        }
        with atomic_open(npy.with_suffix(".json")) as f:
            f.write(json.dumps(meta, indent=1).encode())
    except OSError as e:
        warnings.warn(
            f"Cannot write the decoded-frame cache in {cache_dir} ({e.__class__.__name__}: {e}); continuing "
            "without a cache, so the PNGs are decoded again on every run. Pass a writable folder as the "
            "cache directory (--cache_dir) to avoid that.",
            UserWarning,
            stacklevel=3,
        )
        return arr
    _remove_superseded(cache_dir, stem, tag, root, frame_H, frame_W)
    log.info("cached %s in %s", tag, npy)
    return arr
