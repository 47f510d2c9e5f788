"""Silencing what native (C++) libraries print straight to the process's file descriptors: pybullet (the demo
renderer) and MediaPipe (poses from video) both do, and Python's own redirection cannot catch it."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_c_output() -> Iterator[None]:
    """Silence what native libraries print straight to the process's stdout/stderr (pybullet's build time on
    import and a warning per joint of humanoid.urdf; MediaPipe's absl/glog lines); Python-level output is
    flushed first and unaffected after."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = []
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
                os.dup2(devnull, fd)
            except OSError:
                pass
        yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
