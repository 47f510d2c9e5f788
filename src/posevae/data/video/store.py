"""The cache of ``posevae data from-video``: decoded frames and MediaPipe's landmarks of one source.

Pose estimation is the slow part (tens of frames a second); with the cache a second run over the same
INPUT (other splits, another frame size, other cut points) decodes and estimates nothing. One entry is a
folder named by a SHA-256 of (cache version, the source's absolute path, the byte size and ``mtime_ns``
of every file it is read from, the frame rate asked for, the working size)::

    <cache_dir>/<key>/frames.u8       the frames, raw uint8 (N, h, w, 3), read back memory-mapped
    <cache_dir>/<key>/frames.json     N, h, w and the source; written last: its presence marks a whole entry
    <cache_dir>/<key>/landmarks-<mode>-mediapipe<version>.npz   xy (N, 33, 2), visibility (N, 33)

Editing or touching the source makes a new key. Files are written through :mod:`posevae.files` (under
temporary names, unique to each writer, then renamed), so a reader never sees half an entry and two
processes filling the same entry do not clash. The default folder is ``$XDG_CACHE_HOME/posevae/video`` (else
``~/.cache/posevae/video``); it may be deleted at any time.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from posevae.data.video.decode import Source
from posevae.data.video.estimate import MEDIAPIPE_VERSION, MODEL_COMPLEXITY, Landmarks
from posevae.files import atomic_open, atomic_write_text, remove_temp_files

CACHE_VERSION = 1
_STALE_TMP_S = 86400.0  # temporary files not written for a day are leftovers of a killed writer


def default_store_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "posevae" / "video"


def source_key(source: Source, fps: float | None, max_side: int) -> str:
    """SHA-256 (hex) of what the frames are made from (see the module docstring)."""
    files = source.files or (source.path,)
    h = hashlib.sha256(
        f"posevae-video v{CACHE_VERSION}\0{source.path.resolve()}\0{fps}\0{max_side}\n".encode()
    )
    for f in files:
        st = os.stat(f)
        h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class FrameStore:
    """One cache entry: the frames (memory-mapped) and the landmarks of each estimator mode."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _landmarks_path(self, static: bool) -> Path:
        mode = "static" if static else "video"
        return self.folder / f"landmarks-{mode}-mediapipe{MEDIAPIPE_VERSION}-c{MODEL_COMPLEXITY}.npz"

    def load_frames(self) -> np.ndarray | None:
        """(N, h, w, 3) uint8 memory-mapped, or None when the entry has no whole frame file."""
        try:
            meta = json.loads((self.folder / "frames.json").read_text())
            shape = (int(meta["n"]), int(meta["h"]), int(meta["w"]), 3)
            if (self.folder / "frames.u8").stat().st_size != int(np.prod(shape)):
                return None
            return np.memmap(self.folder / "frames.u8", dtype=np.uint8, mode="r", shape=shape)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write_frames(self, frames: Iterator[np.ndarray], source: Source) -> Iterator[np.ndarray]:
        """Pass ``frames`` through, appending each to the entry; the entry is complete once they run out."""
        self.folder.mkdir(parents=True, exist_ok=True)
        frames = iter(frames)
        first = next(frames, None)
        if first is None:  # no frames: no entry
            return
        n, shape = 0, first.shape
        with atomic_open(self.folder / "frames.u8") as f:  # an error, or the reader stopped early: no entry
            for frame in itertools.chain([first], frames):
                f.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
                n += 1
                yield frame
        meta = {"n": n, "h": shape[0], "w": shape[1], "source": str(source.path), "version": CACHE_VERSION}
        atomic_write_text(self.folder / "frames.json", json.dumps(meta, indent=1))

    def load_landmarks(self, static: bool, n_frames: int) -> Landmarks | None:
        try:
            with np.load(self._landmarks_path(static)) as data:
                marks = Landmarks(data["xy"].astype(np.float32), data["visibility"].astype(np.float32))
        except (OSError, ValueError, KeyError):
            return None
        return marks if len(marks) == n_frames else None

    def save_landmarks(self, static: bool, landmarks: Landmarks) -> None:
        with atomic_open(self._landmarks_path(static)) as f:
            np.savez(f, xy=landmarks.xy, visibility=landmarks.visibility)


@contextlib.contextmanager
def open_store(cache_dir: Path | None, key: str) -> Iterator[FrameStore]:
    """The cache entry ``key`` in ``cache_dir``; with None (or an unwritable folder) a temporary one, deleted
    on exit (the frames still go to disk: a long video does not fit in memory at once)."""
    folder = None
    if cache_dir is not None:
        try:
            (Path(cache_dir) / key).mkdir(parents=True, exist_ok=True)
            folder = Path(cache_dir) / key
        except OSError as err:
            warnings.warn(
                f"Cannot write the video cache in {cache_dir} ({err}); continuing without a cache, so "
                "the next run extracts the poses again. Pass a writable --cache-dir.",
                stacklevel=3,
            )
    if folder is not None:
        remove_temp_files(folder, _STALE_TMP_S)
        yield FrameStore(folder)
        return
    tmp = Path(tempfile.mkdtemp(prefix="posevae-video-"))
    try:
        yield FrameStore(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
