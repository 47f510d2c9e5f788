"""Files and folders written so that a crash never leaves half of one (atomic writes), into folders checked
first. This module is posevae's one atomic writer: every other module writes through it.

- A file (checkpoints, metrics, CSVs, GIFs, the report, the caches) goes through :func:`atomic_path`
  (or :func:`atomic_write`, :func:`atomic_write_text`, :func:`atomic_open` built on it): a temporary file
  beside the target with a unique name, fsynced, then renamed onto it.
- A folder (datasets, folders of PNGs) goes through :func:`atomic_folder`: filled under a hidden name
  beside the target, then renamed onto it by :func:`replace_folder`.

Temporary files are named ``.<target name>.<random>.tmp``, unique per writer, so two processes writing
the same target never share one; :func:`remove_temp_files` clears those a killed writer left behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from posevae.errors import UserError

_TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield the path of a new, empty temporary file beside ``path``; when the block ends normally, fsync
    it and rename it onto ``path``; when it raises, remove it (and leave ``path`` as it was).

    A crash at any moment leaves either the old file or the new one, never a half-written file. The file
    gets the usual permissions (``0o666`` less the umask), as a plain ``open`` would give it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give them the usual permissions
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` for a temporary file beside ``path``, fsync it, then rename it onto ``path``
    (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        write(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """``open`` a temporary file beside ``path`` for writing; renamed onto ``path`` when the block ends
    normally (see :func:`atomic_path`). For writers that want a file object (``np.save``, ``np.savez``,
    streamed writes)."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_temp_file(path: Path) -> bool:
    """Whether ``path`` is named like the temporary file of :func:`atomic_path`."""
    return path.name.startswith(".") and path.name.endswith(_TEMP_SUFFIX)


def remove_temp_files(folder: Path, older_than_s: float = 0.0) -> None:
    """Remove the temporary files of :func:`atomic_path` in ``folder`` not modified for ``older_than_s``
    seconds: those of writers killed mid-write (with a margin, a live writer keeps its file fresh). Best
    effort: what cannot be removed stays."""
    now = time.time()
    with contextlib.suppress(OSError):
        for p in folder.iterdir():
            with contextlib.suppress(OSError):
                if is_temp_file(p) and p.is_file() and now - p.stat().st_mtime >= older_than_s:
                    p.unlink()


def ensure_writable_folder(folder: Path, message: str) -> Path:
    """Create ``folder`` (and its parents) and write and remove a probe file in it; returns ``folder``.

    Raises UserError(``message``) when that fails, with ``{error}`` in it replaced by the reason.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UserError(message.replace("{error}", str(err.strerror or err))) from None
    return folder


def _hidden_sibling(out: Path, what: str) -> Path:
    return out.with_name(f".{out.name}.{what}-{os.getpid()}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def atomic_folder(out: str | Path) -> Iterator[Path]:
    """Yield a new, empty hidden folder beside ``out`` to fill; when the block ends normally, rename it
    onto ``out`` (:func:`replace_folder`: whatever was at ``out`` is replaced as a whole); when it raises,
    remove it and leave ``out`` as it was.

    The caller checks beforehand (inside the block, to check as late as possible) that ``out`` may be
    replaced. The folder is made with the usual permissions (``0o777`` less the umask).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _hidden_sibling(out, "writing")
    tmp.mkdir()  # honours the umask, unlike tempfile.mkdtemp (always 0700)
    try:
        yield tmp
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_folder(finished: Path, out: Path) -> None:
    """Rename the finished folder onto ``out``. Whatever is at ``out`` is first renamed aside (a hidden
    sibling) and removed only once the new folder is in place (put back if that fails), so a crash leaves
    the old folder or the new one, never a mix. The caller checks beforehand that ``out`` may be replaced;
    :func:`atomic_folder` is the usual way in."""
    old = None
    if os.path.lexists(out):
        old = _hidden_sibling(out, "old")
        os.replace(out, old)
    try:
        os.replace(finished, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
