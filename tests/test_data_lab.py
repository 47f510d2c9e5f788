"""The LAB4_Dataset reader and its cache, on tiny datasets written with PIL in tmp_path.

Every image is one flat colour that encodes where it came from: R = index % 256, G = index // 256,
B = 100 for frames, 200 for labels, 50 for ground truth; so a test can read which file it got.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import posevae.data.lab as lab
from posevae.data import (
    DEFAULT_CACHE_NAME,
    ClipDataset,
    TestSequence,
    Video,
    load_test_sequences,
    load_val_video,
    load_video,
)
from posevae.errors import UserError

H, W = 4, 8  # frame_H, frame_W of the tests
FRAME, LABEL, TRUTH = 100, 200, 50


def write_png(path: Path, k: int, kind: int, size: tuple[int, int] = (H, W), mode: str = "RGB") -> Path:
    """A flat (h, w) image encoding index k and kind; saved in ``mode``."""
    h, w = size
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[...] = (k % 256, k // 256, kind)
    img = Image.fromarray(rgb)
    if mode == "L":
        img = Image.fromarray(np.full((h, w), k % 256, np.uint8), mode="L")
    elif mode == "RGBA":
        img = Image.fromarray(np.dstack([rgb, np.full((h, w), 7, np.uint8)]), mode="RGBA")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def make_split(DR: Path, split: str, n: int, name: str = "{k}.png", **kw) -> list[str]:
    names = [name.format(k=k) for k in range(n)]
    for k, nm in enumerate(names):
        write_png(DR / split / f"{split}_img" / nm, k, FRAME, **kw)
        write_png(DR / split / f"{split}_label" / nm, k, LABEL, **kw)
    return names


def make_test(DR: Path, seqs: dict[str, int], gt: bool = True) -> None:
    for s, n in seqs.items():
        write_png(DR / "test" / "test_img" / s / "0.png", 0, FRAME)
        for k in range(n):
            write_png(DR / "test" / "test_label" / s / f"{k}.png", k, LABEL)
            if gt:
                write_png(DR / "test" / "test_gt" / s / f"{k}.png", k, TRUTH)


def index_of(t: torch.Tensor) -> list[int]:
    """The encoded indices of a (N, 3, H, W) uint8 tensor."""
    return (t[:, 0, 0, 0].long() + 256 * t[:, 1, 0, 0].long()).tolist()


def tree(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under root with a hash of its bytes and its mtime_ns."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def DR(tmp_path: Path) -> Path:
    return tmp_path / "LAB4_Dataset"


def load(DR: Path, split: str = "train", **kw) -> Video:
    kw.setdefault("cache_dir", DR.parent / "cache")
    return load_video(DR, split, H, W, **kw)


# ------------------------------------------------------------------------------------- order, pairing

def test_numeric_order_with_and_without_frame_prefix(DR: Path) -> None:
    order = [10, 2, 0, 1, 11, 3]  # created out of order; string order would put 10 and 11 before 2
    for k in order:
        nm = f"frame{k}.png" if k % 2 else f"{k}.png"
        write_png(DR / "train" / "train_img" / nm, k, FRAME)
        write_png(DR / "train" / "train_label" / nm, k, LABEL)
    v = load(DR)
    assert v.names == ["0.png", "frame1.png", "2.png", "frame3.png", "10.png", "frame11.png"]
    assert index_of(v.frames) == [0, 1, 2, 3, 10, 11]
    assert v.frames.dtype == torch.uint8 and v.frames.shape == (6, 3, H, W)
    assert len(v) == 6


def test_frames_and_labels_are_paired_by_name(DR: Path) -> None:
    make_split(DR, "val", 12, name="frame{k}.png")
    v = load(DR, "val")
    assert v.labels.shape == v.frames.shape == (12, 3, H, W)
    assert index_of(v.labels) == index_of(v.frames) == list(range(12))
    assert (v.frames[:, 2] == FRAME).all() and (v.labels[:, 2] == LABEL).all()


# ---------------------------------------------------------------------------------------------- clips

def synthetic_video(n: int) -> Video:
    """Frame k has R = k; label k has R = k + 1."""
    frames = torch.zeros(n, 3, H, W, dtype=torch.uint8)
    frames[:, 0] = torch.arange(n, dtype=torch.uint8).view(n, 1, 1)
    labels = frames.clone()
    labels[:, 0] += 1
    return Video(frames=frames, labels=labels, names=[f"{k}.png" for k in range(n)])


def test_clips_non_overlapping_by_default_as_the_lab(DR: Path) -> None:
    make_split(DR, "train", 50)
    ds = ClipDataset(load(DR), clip_len=16)
    assert len(ds) == 50 // 16 == 3
    for i in range(len(ds)):
        frames, labels = ds[i]
        assert frames.shape == labels.shape == (16, 3, H, W) and frames.dtype == torch.uint8
        assert index_of(frames) == index_of(labels) == list(range(16 * i, 16 * i + 16))
    assert index_of(ds[-1][0]) == list(range(32, 48))
    with pytest.raises(IndexError):
        ds[3]
    assert len(list(iter(ds))) == 3


def test_clips_with_stride_and_partial() -> None:
    v = synthetic_video(50)
    ds = ClipDataset(v, clip_len=16, stride=4)
    assert len(ds) == (50 - 16) // 4 + 1 == 9
    assert index_of(ds[2][0]) == list(range(8, 24))
    assert index_of(ds[8][1]) == [k + 1 for k in range(32, 48)]
    assert len(ClipDataset(v, clip_len=16, partial=0.5)) == int(50 * 0.5) // 16 == 1
    assert len(ClipDataset(v, clip_len=16, partial=0.7)) == int(50 * 0.7) // 16 == 2
    assert len(ClipDataset(v, clip_len=5, stride=10, partial=0.5)) == (25 - 5) // 10 + 1 == 3
    # the lab's training set: 23,410 frames, clips of 16 -> 1,463 clips (without materialising it)
    big = Video(frames=torch.zeros(23410, 3, 1, 1, dtype=torch.uint8).expand(23410, 3, H, W),
                labels=torch.zeros(1, 1, 1, 1, dtype=torch.uint8).expand(23410, 3, H, W), names=[])
    assert len(ClipDataset(big, 16)) == 1463


def test_clips_too_few_frames_raise() -> None:
    with pytest.raises(UserError, match="too few frames"):
        ClipDataset(synthetic_video(10), clip_len=16)
    with pytest.raises(UserError, match="too few frames"):
        ClipDataset(synthetic_video(20), clip_len=16, partial=0.5)


def test_clips_in_a_dataloader_batch_to_b_t_c_h_w() -> None:
    loader = torch.utils.data.DataLoader(ClipDataset(synthetic_video(40), clip_len=8), batch_size=2)
    frames, labels = next(iter(loader))
    assert frames.shape == (2, 8, 3, H, W) and frames.dtype == torch.uint8
    assert index_of(frames[1]) == list(range(8, 16))


# ---------------------------------------------------------------------------------- decoding details

def test_images_of_another_size_are_resized(DR: Path) -> None:
    make_split(DR, "train", 3, size=(16, 32))  # 4x larger
    make_split(DR, "val", 3, size=(2, 4))  # 2x smaller
    for split in ("train", "val"):
        v = load(DR, split)
        assert v.frames.shape == v.labels.shape == (3, 3, H, W)
        assert index_of(v.frames) == [0, 1, 2]  # a flat colour stays exact under BILINEAR
        assert (v.labels[:, 2] == LABEL).all()


def test_images_of_the_right_size_are_not_resampled(DR: Path) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    for sub in ("train_img", "train_label"):
        (DR / "train" / sub).mkdir(parents=True)
        Image.fromarray(noise).save(DR / "train" / sub / "0.png")
    v = load(DR)
    assert np.array_equal(v.frames[0].permute(1, 2, 0).numpy(), noise)


def test_grayscale_and_rgba_are_converted_with_one_warning(DR: Path) -> None:
    make_split(DR, "train", 6)
    write_png(DR / "train" / "train_img" / "1.png", 1, FRAME, mode="L")
    write_png(DR / "train" / "train_img" / "2.png", 2, FRAME, mode="RGBA")
    write_png(DR / "train" / "train_label" / "3.png", 3, LABEL, mode="L")
    grey16 = np.full((H, W), 40 * 257, np.uint16)  # 16-bit grey 40/255: must not clip to white
    Image.fromarray(grey16).save(DR / "train" / "train_label" / "4.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v = load(DR)
    msgs = [str(w.message) for w in caught if "converted to RGB" in str(w.message)]
    assert len(msgs) == 1 and msgs[0].startswith("4 of 12 images")
    assert v.frames.shape == (6, 3, H, W)
    assert v.frames[1, :, 0, 0].tolist() == [1, 1, 1]  # grey value 1 on all three channels
    assert v.frames[2, :, 0, 0].tolist() == [2, 0, FRAME]  # alpha dropped
    assert v.labels[3, :, 0, 0].tolist() == [3, 3, 3]
    assert v.labels[4, :, 0, 0].tolist() == [40, 40, 40]


# ----------------------------------------------------------------------------------------- test split

def test_test_sequences(DR: Path) -> None:
    make_test(DR, {"10": 4, "2": 5, "0": 3}, gt=False)
    for k in range(5):  # ground truth for sequence 2 only
        write_png(DR / "test" / "test_gt" / "2" / f"frame{k}.png", k, TRUTH)
    write_png(DR / "test" / "test_img" / "10" / "7.png", 7, FRAME)  # two images: the lowest number wins
    write_png(DR / "test" / "test_img" / "10" / "3.png", 3, FRAME)
    (DR / "test" / "test_img" / "10" / "0.png").unlink()
    with pytest.warns(UserWarning, match=r"no ground truth for test sequence\(s\) 0, 10"):  # warned, no error
        seqs = load_test_sequences(DR, H, W, cache_dir=DR.parent / "cache")
    assert [s.name for s in seqs] == ["0", "2", "10"]
    assert all(isinstance(s, TestSequence) for s in seqs)
    assert [s.labels.shape[0] for s in seqs] == [3, 5, 4]
    assert seqs[2].first_frame.shape == (3, H, W) and seqs[2].first_frame.dtype == torch.uint8
    assert seqs[2].first_frame[:, 0, 0].tolist() == [3, 0, FRAME]
    assert index_of(seqs[1].labels) == list(range(5)) and (seqs[1].labels[:, 2] == LABEL).all()
    assert seqs[0].truth is None and seqs[2].truth is None
    assert seqs[1].truth is not None and seqs[1].truth.shape == (5, 3, H, W)
    assert index_of(seqs[1].truth) == list(range(5)) and (seqs[1].truth[:, 2] == TRUTH).all()
    assert seqs[1].label_dir == DR / "test" / "test_label" / "2"
    # the cache gives the same
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seqs2 = load_test_sequences(DR, H, W, cache_dir=DR.parent / "cache")
    assert all(torch.equal(a.labels, b.labels) for a, b in zip(seqs, seqs2, strict=True))


def test_test_sequence_without_first_frame(DR: Path) -> None:
    make_test(DR, {"0": 3, "1": 3})
    (DR / "test" / "test_img" / "1" / "0.png").unlink()  # empty folder
    with pytest.raises(UserError, match=r"test_img[/\\]1") as e:
        load_test_sequences(DR, H, W)
    assert "no first frame" in str(e.value)
    (DR / "test" / "test_img" / "1").rmdir()  # no folder at all
    with pytest.raises(UserError, match=r"test_img[/\\]1"):
        load_test_sequences(DR, H, W)


def test_test_truth_count_must_match_labels(DR: Path) -> None:
    make_test(DR, {"0": 4})
    (DR / "test" / "test_gt" / "0" / "3.png").unlink()
    with pytest.raises(UserError, match=r"test_gt[/\\]0 has 3 ground-truth frames but .* has 4"):
        load_test_sequences(DR, H, W)


def test_val_video_is_cut_to_val_vi_len(DR: Path) -> None:
    make_split(DR, "val", 12)
    v = load_val_video(DR, H, W, val_vi_len=10, cache_dir=DR.parent / "cache")
    assert v.frames.shape == (10, 3, H, W) and v.names == [f"{k}.png" for k in range(10)]
    assert index_of(v.labels) == list(range(10))
    with pytest.raises(UserError, match=r"has 12 frames, --val_vi_len asks for 630; lower --val_vi_len") as e:
        load_val_video(DR, H, W, val_vi_len=630, cache_dir=DR.parent / "cache")
    assert "val_img" in str(e.value)


# ----------------------------------------------------------------------------------------- bad input

def test_missing_label_is_named(DR: Path) -> None:
    make_split(DR, "train", 8)
    (DR / "train" / "train_label" / "5.png").unlink()
    with pytest.raises(UserError, match=r"frame\(s\) in .*train_img have no label") as e:
        load(DR)
    assert "5.png" in str(e.value) and "add the missing files" in str(e.value)


def test_missing_frame_is_named(DR: Path) -> None:
    make_split(DR, "train", 8)
    img = DR / "train" / "train_img"
    (img / "6.png").rename(img / "frame6.png")  # unpaired both ways
    with pytest.raises(UserError) as e:
        load(DR)
    msg = str(e.value)
    assert "frame6.png" in msg and "label(s) in" in msg and "6.png" in msg.split("label(s) in")[1]


def test_many_unpaired_files_are_listed_briefly(DR: Path) -> None:
    make_split(DR, "train", 20)
    for k in range(12):
        (DR / "train" / "train_label" / f"{k}.png").unlink()
    listed = r"12 frame\(s\).*: 0\.png, 1\.png, 2\.png, 3\.png, 4\.png \.\.\. \(7 more\)\."
    with pytest.raises(UserError, match=listed):
        load(DR)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_png_is_named(DR: Path, damage: str) -> None:
    make_split(DR, "train", 5, size=(16, 32))
    bad = DR / "train" / "train_label" / "3.png"
    data = bad.read_bytes()
    damaged = {"garbage": b"\x89PNG not really" * 10, "truncated": data[: len(data) // 2], "empty": b""}
    bad.write_bytes(damaged[damage])
    with pytest.raises(UserError, match="(?i)re-export or delete it") as e:
        load(DR)
    assert str(bad) in str(e.value)


def test_corrupt_png_in_a_large_split_is_named(DR: Path) -> None:
    make_split(DR, "train", 300)  # 600 images: decoded in threads, with a progress bar
    bad = DR / "train" / "train_img" / "287.png"
    bad.write_bytes(b"nope")
    with pytest.raises(UserError, match="(?i)re-export or delete it") as e:
        load(DR)
    assert "287.png" in str(e.value)


def test_mixed_sizes_name_one_file_of_each(DR: Path) -> None:
    make_split(DR, "train", 5)
    write_png(DR / "train" / "train_label" / "4.png", 4, LABEL, size=(8, 16))
    with pytest.raises(UserError, match="different sizes") as e:
        load(DR)
    msg = str(e.value)
    assert str(DR / "train" / "train_img" / "0.png") in msg
    assert str(DR / "train" / "train_label" / "4.png") in msg
    assert "8x4" in msg and "16x8" in msg


def test_empty_split(DR: Path) -> None:
    (DR / "train" / "train_img").mkdir(parents=True)
    (DR / "train" / "train_label").mkdir(parents=True)
    with pytest.raises(UserError, match=r"train split is empty.*train_img.*LAB4_Dataset"):
        load(DR)


def test_missing_split_folder(DR: Path) -> None:
    make_split(DR, "train", 3)
    with pytest.raises(UserError, match=r"Missing folder.*val[/\\]val_img.*val[/\\]val_label.*LAB4_Dataset"):
        load(DR, "val")
    shutil.rmtree(DR / "train" / "train_label")
    with pytest.raises(UserError, match=r"Missing folder.*train_label") as e:
        load(DR)
    assert "train_img (" not in str(e.value)  # only the missing one is named
    with pytest.raises(UserError, match="does not exist"):
        load(DR / "nope")
    with pytest.raises(UserError, match=r"Missing folder.*test_img"):
        load_test_sequences(DR, H, W)


def test_names_without_a_number_or_with_a_duplicate_number(DR: Path) -> None:
    make_split(DR, "train", 3)
    write_png(DR / "train" / "train_img" / "cover.png", 0, FRAME)
    with pytest.raises(UserError, match=r"hold no number: cover\.png"):
        load(DR)
    (DR / "train" / "train_img" / "cover.png").unlink()
    write_png(DR / "train" / "train_img" / "frame02.png", 2, FRAME)
    with pytest.raises(UserError, match=r"both have number 2") as e:
        load(DR)
    assert "frame02.png" in str(e.value) and "2.png" in str(e.value)


def test_non_png_and_hidden_files_are_ignored(DR: Path) -> None:
    make_split(DR, "train", 3)
    (DR / "train" / "train_img" / "notes.txt").write_text("hi")
    (DR / "train" / "train_img" / ".DS_Store").write_bytes(b"\0")
    assert load(DR).names == ["0.png", "1.png", "2.png"]


# ---------------------------------------------------------------------------------------------- cache

def _boom(*a, **k):
    raise AssertionError("decoded although the cache should have been used")


def test_second_load_reads_the_cache(DR: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_split(DR, "train", 10)
    first = load_video(DR, "train", H, W)  # default cache: DR/.posevae_cache
    assert (DR / DEFAULT_CACHE_NAME).is_dir()
    monkeypatch.setattr(lab, "decode_image", _boom)
    second = load_video(DR, "train", H, W)
    assert torch.equal(first.frames, second.frames) and torch.equal(first.labels, second.labels)
    assert second.names == first.names
    # another frame size is another entry
    with pytest.raises(AssertionError, match="decoded although"):
        load_video(DR, "train", 2 * H, W)


def test_changed_source_invalidates_the_cache(DR: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_split(DR, "train", 6)
    cache = DR.parent / "cache"
    load(DR)
    real = lab.decode_image
    calls: list[str] = []

    def counting(path, *a):
        calls.append(os.path.basename(path))
        return real(path, *a)

    monkeypatch.setattr(lab, "decode_image", counting)
    load(DR)
    assert calls == []
    # touching a file (same bytes, new mtime) invalidates
    p = DR / "train" / "train_label" / "2.png"
    st_ = p.stat()
    os.utime(p, ns=(st_.st_atime_ns, st_.st_mtime_ns + 5_000_000_000))
    load(DR)
    assert len(calls) == 12
    # replacing a file's content: the new pixels come out
    calls.clear()
    write_png(DR / "train" / "train_img" / "4.png", 77, FRAME)
    os.utime(DR / "train" / "train_img" / "4.png", ns=(1, st_.st_mtime_ns + 9_000_000_000))
    v = load(DR)
    assert len(calls) == 12 and index_of(v.frames) == [0, 1, 2, 3, 77, 5]
    # superseded entries are removed: one entry per split remains
    assert len(list(cache.glob("train-*.npy"))) == 1
    # adding a pair invalidates too
    calls.clear()
    make_split(DR, "train", 7)
    assert len(load(DR)) == 7 and len(calls) == 14


def test_corrupt_cache_file_is_rebuilt(DR: Path) -> None:
    make_split(DR, "train", 4)
    cache = DR.parent / "cache"
    first = load(DR)
    (npy,) = cache.glob("train-*.npy")
    npy.write_bytes(npy.read_bytes()[:100])
    assert torch.equal(load(DR).frames, first.frames)


def test_cache_elsewhere_leaves_the_dataset_untouched(DR: Path) -> None:
    make_split(DR, "train", 6)
    make_split(DR, "val", 4)
    make_test(DR, {"0": 3, "1": 3})
    before = tree(DR)
    cache = DR.parent / "elsewhere" / "cache"
    for _ in range(2):
        load_video(DR, "train", H, W, cache_dir=cache)
        load_val_video(DR, H, W, 4, cache_dir=cache)
        load_test_sequences(DR, H, W, cache_dir=cache)
    assert tree(DR) == before
    assert not (DR / DEFAULT_CACHE_NAME).exists()
    assert len(list(cache.glob("*.npy"))) == 4  # train, val, test_0, test_1
    # with the default cache, the only thing written under DR is DR/.posevae_cache
    load_video(DR, "train", H, W)
    load_test_sequences(DR, H, W)
    after = tree(DR)
    assert {k: v for k, v in after.items() if not k.startswith(DEFAULT_CACHE_NAME + os.sep)} == before


def test_unwritable_cache_falls_back_with_one_warning(DR: Path) -> None:
    make_split(DR, "train", 5)
    blocker = DR.parent / "a_file"
    blocker.write_text("not a folder")
    before = tree(DR)
    with pytest.warns(UserWarning, match="Cannot write the decoded-frame cache") as rec:
        v = load_video(DR, "train", H, W, cache_dir=blocker / "cache")
    assert len([w for w in rec if "decoded-frame cache" in str(w.message)]) == 1
    assert index_of(v.frames) == list(range(5))
    assert tree(DR) == before and blocker.read_text() == "not a folder"


def test_read_only_cache_dir_falls_back(DR: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_split(DR, "train", 5)
    cache = DR.parent / "ro"
    cache.mkdir()
    if os.geteuid() != 0:  # root ignores permissions: simulate the failing write instead
        cache.chmod(0o555)
    else:
        def deny(*a, **k):
            raise PermissionError(13, "Permission denied", str(cache))
        monkeypatch.setattr("posevae.files.tempfile.mkstemp", deny)
    try:
        with pytest.warns(UserWarning, match="continuing without a cache"):
            v = load_video(DR, "train", H, W, cache_dir=cache)
    finally:
        cache.chmod(0o755)
    assert index_of(v.labels) == list(range(5)) and list(cache.iterdir()) == []


# ------------------------------------------------------------------------------------------- property

@settings(max_examples=15, deadline=None, database=None)
@given(
    n=st.integers(1, 25),
    formats=st.lists(st.sampled_from(["{k}.png", "frame{k}.png", "{k:05d}.png", "frame_{k:03d}.png"]),
                     min_size=25, max_size=25),
    seed=st.integers(0, 2**16),
)
def test_random_layouts_load_in_numeric_order(n: int, formats: list[str], seed: int) -> None:
    rng = random.Random(seed)
    ids = rng.sample(range(300), n)  # sparse, unsorted numbers
    with tempfile.TemporaryDirectory() as tmp:
        DR = Path(tmp) / "DR"
        names = {k: formats[i].format(k=k) for i, k in enumerate(ids)}
        order = list(ids)
        rng.shuffle(order)  # creation order is random
        for k in order:
            write_png(DR / "train" / "train_img" / names[k], k, FRAME)
        rng.shuffle(order)
        for k in order:
            write_png(DR / "train" / "train_label" / names[k], k, LABEL)
        v = load_video(DR, "train", H, W, cache_dir=Path(tmp) / "cache")
        assert index_of(v.frames) == index_of(v.labels) == sorted(ids)
        assert v.names == [names[k] for k in sorted(ids)]
        victim = names[rng.choice(ids)]
        (DR / "train" / "train_label" / victim).unlink()
        with pytest.raises(UserError, match="have no label") as e:
            load_video(DR, "train", H, W, cache_dir=Path(tmp) / "cache")
        assert victim in str(e.value)


def test_decoding_bar_shows_for_large_splits_unless_progress_is_off(DR: Path, monkeypatch, capsys) -> None:
    """`--quiet` (progress=False) silences the decoding bar too; otherwise it shows above the threshold."""
    monkeypatch.setattr(lab, "PROGRESS_MIN_FILES", 4)
    make_split(DR, "train", 6)
    load(DR, cache_dir=DR.parent / "quiet", progress=False)
    assert "decoding train" not in capsys.readouterr().err
    load(DR, cache_dir=DR.parent / "loud")
    assert "decoding train" in capsys.readouterr().err
    make_split(DR, "val", 6)
    load_val_video(DR, H, W, 6, cache_dir=DR.parent / "quiet", progress=False)
    assert "decoding val" not in capsys.readouterr().err
