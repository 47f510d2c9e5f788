"""posevae.files, the one atomic writer of files and folders, and the caches that write through it."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from posevae import files
from posevae.data.video.decode import Source
from posevae.data.video.estimate import Landmarks
from posevae.data.video.store import FrameStore
from posevae.files import (
    atomic_folder,
    atomic_open,
    atomic_path,
    atomic_write,
    atomic_write_text,
    remove_temp_files,
    replace_folder,
)


class Boom(Exception):
    pass


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


# ------------------------------------------------------------------------------------------------ files


def test_atomic_write_keeps_the_old_file_when_write_raises(tmp_path: Path) -> None:
    target = tmp_path / "metrics.csv"
    target.write_text("old")

    def write(tmp: Path) -> None:
        tmp.write_text("half of the new")
        raise Boom

    with pytest.raises(Boom):
        atomic_write(target, write)
    assert target.read_text() == "old"
    assert names(tmp_path) == ["metrics.csv"]  # no temporary file left behind


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.txt"  # the folder is made
    atomic_write_text(target, "one")
    atomic_write(target, lambda tmp: tmp.write_bytes(b"two"))
    assert target.read_text() == "two"
    assert names(target.parent) == ["a.txt"]


def test_atomic_write_writes_beside_the_target(tmp_path: Path) -> None:
    seen = []
    atomic_write(tmp_path / "x.bin", lambda tmp: seen.append(tmp) or tmp.write_bytes(b"x"))
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".x.bin.")  # same file system: a rename


def test_atomic_open_keeps_the_old_file_when_the_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "a.npy"
    np.save(target, np.arange(3))
    with pytest.raises(Boom), atomic_open(target) as f:
        np.save(f, np.arange(5))
        raise Boom
    assert np.load(target).tolist() == [0, 1, 2]
    assert names(tmp_path) == ["a.npy"]
    with atomic_open(target) as f:  # a file object: np.save does not append .npy to a temporary's name
        np.save(f, np.arange(5))
    assert np.load(target).tolist() == [0, 1, 2, 3, 4]
    assert names(tmp_path) == ["a.npy"]


def test_two_writers_of_one_target_get_their_own_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "frames.u8"
    with atomic_path(target) as a, atomic_path(target) as b:
        assert a != b
        a.write_bytes(b"first writer")
        b.write_bytes(b"second writer")
    # b finished first, then a: each file was whole when renamed, and the last rename wins
    assert target.read_bytes() == b"first writer"
    assert names(tmp_path) == ["frames.u8"]


def test_files_get_the_usual_permissions(tmp_path: Path, umask_027: None) -> None:
    atomic_write_text(tmp_path / "a.txt", "x")
    with atomic_open(tmp_path / "b.bin") as f:
        f.write(b"x")
    for name in ("a.txt", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name  # 0o666 less the umask


def test_remove_temp_files_removes_stale_temporaries_only(tmp_path: Path) -> None:
    stale = tmp_path / ".a.npy.abc123.tmp"
    fresh = tmp_path / ".b.npy.def456.tmp"
    keep = [tmp_path / "a.npy", tmp_path / "notes.tmp", tmp_path / ".hidden"]
    for p in (stale, fresh, *keep):
        p.write_text("x")
    (tmp_path / ".folder.tmp").mkdir()  # a folder is never removed
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    remove_temp_files(tmp_path, older_than_s=600)
    assert names(tmp_path) == sorted([fresh.name, ".folder.tmp", *(p.name for p in keep)])
    remove_temp_files(tmp_path)
    assert names(tmp_path) == sorted([".folder.tmp", *(p.name for p in keep)])
    remove_temp_files(tmp_path / "missing")  # best effort: no error


# ---------------------------------------------------------------------------------------------- folders


def test_atomic_folder_keeps_the_old_folder_when_the_body_raises(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "mine.txt").write_text("the user's")
    with pytest.raises(Boom), atomic_folder(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".ds.") and names(tmp) == []
        (tmp / "new.txt").write_text("half")
        raise Boom
    assert names(out) == ["mine.txt"] and (out / "mine.txt").read_text() == "the user's"
    assert names(tmp_path) == ["ds"]  # no hidden folder left


def test_atomic_folder_replaces_the_folder_on_success(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with atomic_folder(out) as tmp:
        (tmp / "new.txt").write_text("new")
        assert names(out) == ["old.txt"]  # nothing changes at out before the end
    assert names(out) == ["new.txt"]
    assert names(tmp_path) == ["ds"]  # neither the new nor the old one left under a hidden name


def test_atomic_folder_makes_a_missing_folder_and_replaces_a_file(tmp_path: Path) -> None:
    out = tmp_path / "a" / "frames"
    with atomic_folder(out) as tmp:
        (tmp / "0.png").write_bytes(b"")
    assert names(out) == ["0.png"]
    out2 = tmp_path / "blocker"
    out2.write_text("a file")
    with atomic_folder(out2) as tmp:
        (tmp / "0.png").write_bytes(b"")
    assert names(out2) == ["0.png"] and names(tmp_path) == ["a", "blocker"]


def test_folders_get_the_usual_permissions(tmp_path: Path, umask_027: None) -> None:
    with atomic_folder(tmp_path / "ds") as tmp:
        (tmp / "x").write_text("x")
    assert stat.S_IMODE((tmp_path / "ds").stat().st_mode) == 0o750  # 0o777 less the umask (mkdtemp: 0o700)


def test_replace_folder_puts_the_old_folder_back_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "mine.txt").write_text("the user's")
    real_replace = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        if Path(src).name.startswith(".ds.writing"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(OSError, match="No space"), atomic_folder(out) as tmp:
        (tmp / "new.txt").write_text("new")
    monkeypatch.undo()
    assert names(out) == ["mine.txt"] and names(tmp_path) == ["ds"]


def test_replace_folder_onto_a_missing_folder(tmp_path: Path) -> None:
    finished = tmp_path / "done"
    finished.mkdir()
    (finished / "a").write_text("a")
    replace_folder(finished, tmp_path / "out")
    assert names(tmp_path) == ["out"] and names(tmp_path / "out") == ["a"]


# ------------------------------------------------------------------------------------------ video cache


def _source(tmp_path: Path) -> Source:
    return Source(tmp_path / "in.mp4", "video", 30.0, 3, 4, 2)


def _frames(value: int, n: int = 3) -> Iterator[np.ndarray]:
    for _ in range(n):
        yield np.full((2, 4, 3), value, np.uint8)


def test_video_cache_two_writers_of_one_entry_do_not_clash(tmp_path: Path) -> None:
    store = FrameStore(tmp_path / "key")
    a = store.write_frames(_frames(1), _source(tmp_path))
    b = store.write_frames(_frames(2), _source(tmp_path))
    for _ in range(3):  # interleaved, as two processes filling the same entry
        next(a)
        next(b)
    for writer in (b, a):
        assert list(writer) == []  # runs out: the entry is complete
    frames = store.load_frames()
    assert frames is not None and frames.shape == (3, 2, 4, 3)
    assert (np.asarray(frames) == 1).all()  # whole frames of one writer (the last to finish), not a mix
    assert names(store.folder) == ["frames.json", "frames.u8"]


def test_video_cache_reader_stopping_early_leaves_no_entry(tmp_path: Path) -> None:
    store = FrameStore(tmp_path / "key")
    gen = store.write_frames(_frames(1), _source(tmp_path))
    next(gen)
    gen.close()
    assert store.load_frames() is None and names(store.folder) == []
    assert list(store.write_frames(iter([]), _source(tmp_path))) == [] and names(store.folder) == []


def test_video_cache_landmarks_round_trip(tmp_path: Path) -> None:
    store = FrameStore(tmp_path / "key")
    store.folder.mkdir()
    marks = Landmarks(np.ones((3, 33, 2), np.float32), np.zeros((3, 33), np.float32))
    store.save_landmarks(static=False, landmarks=marks)
    back = store.load_landmarks(static=False, n_frames=3)
    assert back is not None and (back.xy == 1).all() and (back.visibility == 0).all()
    assert len(names(store.folder)) == 1 and names(store.folder)[0].endswith(".npz")  # no temporary left
