"""The demo dataset renderer (posevae.data.demo.dataset): layout, determinism, and that the labels match the
images.

Renders are tiny (a few hundred frames at 64x128), so the whole file runs in seconds.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posevae.data.demo import humanoid
from posevae.data.demo import motion as demo_motion
from posevae.data.demo.dataset import _render, read_demo_marker, render_demo_dataset
from posevae.errors import UserError

SIZES = {"n_train": 64, "n_val": 40, "n_test": 2, "test_len": 20, "height": 64, "width": 128}
J = len(humanoid.JOINT_NAMES)


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "RGB"
        return np.asarray(im)


def _frame_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*.png"))


def _pairs(root: Path):
    """(image path, label path, keypoints (J, 2)) for every rendered frame (test: the ground truth)."""
    for split, n in (("train", SIZES["n_train"]), ("val", SIZES["n_val"])):
        kp = np.load(root / split / f"{split}_keypoints.npy")
        for k in range(n):
            yield root / split / f"{split}_img/{k}.png", root / split / f"{split}_label/{k}.png", kp[k]
    for i in range(SIZES["n_test"]):
        kp = np.load(root / "test" / "test_keypoints" / f"{i}.npy")
        for k in range(SIZES["test_len"]):
            yield root / f"test/test_gt/{i}/{k}.png", root / f"test/test_label/{i}/{k}.png", kp[k]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "ds"
    got = render_demo_dataset(out, seed=0, progress=False, **SIZES)
    assert got == out.absolute()
    return out


@pytest.fixture(scope="module")
def background_only(tmp_path_factory) -> Path:
    """The same videos painted without the person: the background of every frame."""
    out = tmp_path_factory.mktemp("demo_bg") / "ds"
    return _render(out, seed=0, progress=False, workers=1, hide_person=True, **SIZES)


def test_layout_and_counts(rendered):
    root = rendered
    n_train, n_val, n_test, test_len = (SIZES[k] for k in ("n_train", "n_val", "n_test", "test_len"))
    assert sorted(p.name for p in (root / "train/train_img").iterdir()) == sorted(
        f"{k}.png" for k in range(n_train)
    )
    assert len(list((root / "train/train_label").iterdir())) == n_train
    assert len(list((root / "val/val_img").iterdir())) == n_val
    assert len(list((root / "val/val_label").iterdir())) == n_val
    for i in range(n_test):
        assert [p.name for p in (root / f"test/test_img/{i}").iterdir()] == ["0.png"]
        assert len(list((root / f"test/test_label/{i}").iterdir())) == test_len
        assert len(list((root / f"test/test_gt/{i}").iterdir())) == test_len
        # the given first frame is the ground truth's first frame
        assert (root / f"test/test_img/{i}/0.png").read_bytes() == (
            root / f"test/test_gt/{i}/0.png"
        ).read_bytes()
    assert not (root / f"test/test_img/{n_test}").exists()
    # every image (frames and labels) is RGB at the requested size
    for img, lab, _ in list(_pairs(root))[::7]:
        assert _load(img).shape == (SIZES["height"], SIZES["width"], 3)
        assert _load(lab).shape == (SIZES["height"], SIZES["width"], 3)
    # no temporary folders are left next to the dataset
    assert [p.name for p in root.parent.iterdir()] == ["ds"]


def test_marker_and_keypoint_files(rendered):
    root = rendered
    marker = read_demo_marker(root)
    assert marker is not None and marker["seed"] == 0
    for k, v in SIZES.items():
        assert marker[k] == v
    assert set(marker["clips"]) == {"train", "val", "test/0", "test/1"}
    used = {seg["clip"] for segs in marker["clips"].values() for seg in segs}
    assert used <= set(demo_motion.CLIPS)
    assert marker["clips"]["test/0"][0]["clip"] in demo_motion.DANCE_CLIPS  # test videos open with a dance

    spec = json.loads((root / "keypoints.json").read_text())
    assert spec["joints"] == list(humanoid.JOINT_NAMES)
    assert all(0 <= a < J and 0 <= b < J for a, b in spec["limbs"])
    assert len(spec["limb_colors"]) == len(spec["limbs"])

    for split, n in (("train", SIZES["n_train"]), ("val", SIZES["n_val"])):
        kp = np.load(root / split / f"{split}_keypoints.npy")
        assert kp.dtype == np.float32 and kp.shape == (n, J, 2)
    for i in range(SIZES["n_test"]):
        kp = np.load(root / "test/test_keypoints" / f"{i}.npy")
        assert kp.dtype == np.float32 and kp.shape == (SIZES["test_len"], J, 2)
        # keypoints inside the frame
        assert kp[..., 0].min() >= 0 and kp[..., 0].max() <= SIZES["width"]
        assert kp[..., 1].min() >= 0 and kp[..., 1].max() <= SIZES["height"]


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    h, w = mask.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            src = mask[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
            out[max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)] |= src
    return out


def test_skeleton_lies_on_the_person_who_fills_the_frame(rendered, background_only):
    """The key property: label pixels fall on the rendered body, and the body is big and inside the frame."""
    H = SIZES["height"]
    inside, heights, touching, n = [], [], 0, 0
    for img_path, lab_path, kp in _pairs(rendered):
        frame = _load(img_path).astype(np.int16)
        bg = _load(background_only / img_path.relative_to(rendered)).astype(np.int16)
        person = np.abs(frame - bg).max(axis=-1) > 6
        label = _load(lab_path).max(axis=-1) > 0
        assert person.any() and label.any(), img_path
        inside.append((label & _dilate(person, 1)).sum() / label.sum())
        rows = np.flatnonzero(person.any(axis=1))
        heights.append((rows[-1] - rows[0] + 1) / H)
        touching += rows[0] == 0 or rows[-1] == H - 1
        # every keypoint projects onto (or right next to) the body
        xi = np.clip(kp[:, 0].astype(int), 0, SIZES["width"] - 1)
        yi = np.clip(kp[:, 1].astype(int), 0, H - 1)
        assert _dilate(person, 2)[yi, xi].mean() >= 0.85, img_path
        n += 1
    inside = np.array(inside)
    assert inside.mean() >= 0.9, inside.mean()
    assert np.percentile(inside, 5) >= 0.8
    assert np.mean(heights) >= 0.6, np.mean(heights)
    assert touching <= 0.05 * n  # the person stays inside the frame


def test_background_only_frames_differ_from_frames(rendered, background_only):
    a = _load(rendered / "train/train_img/0.png")
    b = _load(background_only / "train/train_img/0.png")
    assert (a != b).any()


def test_deterministic_for_a_seed_and_any_worker_count(rendered, tmp_path):
    again = _render(tmp_path / "again", seed=0, progress=False, workers=2, **SIZES)
    files = _frame_files(rendered)
    assert files == _frame_files(again)
    for rel in files:
        assert (rendered / rel).read_bytes() == (again / rel).read_bytes(), rel
    for rel in ("keypoints.json", "demo.json", "train/train_keypoints.npy", "test/test_keypoints/1.npy"):
        assert (rendered / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_another_seed_gives_another_dataset(rendered, tmp_path):
    other = render_demo_dataset(tmp_path / "other", seed=1, progress=False, **SIZES)
    for rel in ("train/train_img/10.png", "val/val_label/5.png", "test/test_gt/0/3.png"):
        assert (rendered / rel).read_bytes() != (other / rel).read_bytes()


def test_videos_are_different(rendered):
    train = np.load(rendered / "train/train_keypoints.npy")
    val = np.load(rendered / "val/val_keypoints.npy")
    assert not np.allclose(train[: len(val)], val)


def test_motion_is_continuous(rendered):
    kp = np.load(rendered / "train/train_keypoints.npy")
    step = np.linalg.norm(np.diff(kp, axis=0), axis=-1)
    assert np.median(step) < 0.05 * SIZES["height"]
    assert step.max() < 0.4 * SIZES["height"]  # no cuts: joints never jump across the frame


TINY = {"n_train": 16, "n_val": 2, "n_test": 1, "test_len": 2, "height": 16, "width": 32}


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="refusing to overwrite"):
        render_demo_dataset(out, progress=False, **TINY)
    assert (out / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(UserError):
        render_demo_dataset(a_file, progress=False, **TINY)


def test_replaces_an_earlier_demo_dataset_and_fills_an_empty_folder(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()  # empty: fine
    render_demo_dataset(out, seed=3, progress=False, **TINY)
    assert read_demo_marker(out)["seed"] == 3
    (out / "train/train_img/extra.png").write_bytes(b"")
    render_demo_dataset(out, seed=4, progress=False, **{**TINY, "n_train": 20})
    marker = read_demo_marker(out)
    assert marker["seed"] == 4 and marker["n_train"] == 20
    assert len(list((out / "train/train_img").iterdir())) == 20  # the old files are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_rejects_bad_sizes(tmp_path):
    with pytest.raises(UserError):
        render_demo_dataset(tmp_path / "x", progress=False, **{**TINY, "n_train": 0})
    with pytest.raises(UserError):
        render_demo_dataset(tmp_path / "x", progress=False, **{**TINY, "height": 2})
    with pytest.raises(UserError):
        render_demo_dataset(tmp_path / "x", seed=-1, progress=False, **TINY)
    assert not (tmp_path / "x").exists()
