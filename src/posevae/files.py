"""Files written so that a crash never leaves half of one (atomic writes), into folders checked first.

Checkpoints, metrics, CSVs, GIFs and the report are all written through :func:`atomic_write`: a temporary
file beside the target, fsynced, then renamed onto it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from posevae.errors import UserError


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` for a temporary file beside ``path``, fsync it, then rename it onto ``path``.

    A crash at any moment leaves either the old file or the new one, never a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give them the usual permissions
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


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


def replace_folder(finished: Path, out: Path) -> None:
    """Rename the finished folder onto ``out``. An existing ``out`` is first renamed aside (a hidden sibling)
    and removed afterwards, so a crash leaves the old folder or the new one, never a mix. The caller checks
    beforehand that ``out`` may be replaced."""
    old = None
    if out.is_dir():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
        os.replace(out, old)
    os.replace(finished, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
