"""Motion transfer (posevae.evaluation.transfer, posevae.cli.evaluation) and the demo pose renderer
(data.demo.poses)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posevae.cli.data import add_data_poses_command
from posevae.cli.evaluation import add_transfer_command
from posevae.config import RunConfig
from posevae.errors import UserError
from posevae.evaluation.transfer import transfer
from posevae.model.checkpoint import Checkpoint, save_checkpoint
from posevae.model.vae import PoseVAE
from tests.conftest import tiny_model_config

H, W, K = 16, 32, 5


def _write_png(path: Path, pixels: np.ndarray) -> Path:  # pixels (H, W, 3) uint8
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _pngs(folder: Path) -> list[str]:
    return sorted((p.name for p in folder.glob("*.png")), key=lambda n: int(n[:-4]))


def _frame(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _gif_frames(path: Path) -> int:
    with Image.open(path) as im:
        return im.n_frames


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A random-weight tiny checkpoint, a first frame at twice the model's size, K poses as PNGs and a GIF."""
    root = tmp_path_factory.mktemp("transfer")
    torch.manual_seed(0)
    config = RunConfig(model=tiny_model_config(H, W))
    ckpt = root / "tiny.safetensors"
    save_checkpoint(ckpt, Checkpoint(config, PoseVAE(config.model).state_dict()))
    rng = np.random.default_rng(0)
    first = _write_png(root / "first.png", rng.integers(0, 256, (2 * H, 2 * W, 3), dtype=np.uint8))
    poses = rng.integers(0, 256, (K, H, W, 3), dtype=np.uint8)
    for k in range(K):  # names in numeric order that string order would get wrong past 9
        _write_png(root / "poses" / f"frame{k * 5}.png", poses[k])
    (root / "poses" / "notes.txt").write_text("other files are ignored, as the lab reader ignores them\n")
    images = [Image.fromarray(p) for p in poses]
    images[0].save(root / "poses.gif", save_all=True, append_images=images[1:], duration=50, loop=0)
    return {"root": root, "ckpt": ckpt, "first": first, "poses": root / "poses", "gif": root / "poses.gif"}


def _run(inputs, out: Path, **kw) -> dict:
    kw.setdefault("poses", inputs["poses"])
    return transfer(inputs["ckpt"], kw.pop("first", inputs["first"]), kw.pop("poses"), out, device="cpu",
                    progress=False, **kw)


def test_a_folder_of_k_poses_gives_k_frames(inputs, tmp_path):
    out = tmp_path / "out"
    summary = _run(inputs, out, seed=3)
    assert _pngs(out / "frames") == [f"{k}.png" for k in range(K)]
    assert _gif_frames(out / "transfer.gif") == K
    with Image.open(out / "transfer.gif") as im:
        assert im.size == (W * 8, H * 8)  # upscaled to >= 128 px high, as posevae test does
    with Image.open(out / "pose_and_frame.gif") as im:
        assert im.n_frames == K and im.size == ((2 * W + 2) * 8, H * 8)
    # frame 0 is the given first frame, resized as the lab reader resizes (PIL bilinear), unchanged
    with Image.open(inputs["first"]) as im:
        want = np.asarray(im.convert("RGB").resize((W, H), Image.BILINEAR))
    np.testing.assert_array_equal(_frame(out / "frames" / "0.png"), want)
    assert not np.array_equal(_frame(out / "frames" / "1.png"), want)
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["frames"] == K and summary["seed"] == 3 and summary["z_mode"] == "sample"
    assert summary["noise_scale"] == RunConfig().sample.noise_scale and summary["poses_kind"] == "folder"
    assert summary["checkpoint"] == str(inputs["ckpt"].resolve()) and summary["device"] == "cpu"
    assert summary["first_frame"] == str(inputs["first"].resolve())
    assert (out / "transfer.mp4").exists() == (summary["outputs"]["mp4"] is not None)
    assert not list(out.glob(".*")), "temporary files left behind"


def test_a_gif_of_poses_works_the_same(inputs, tmp_path):
    summary = _run(inputs, tmp_path / "out", poses=inputs["gif"])
    assert summary["poses_kind"] == "gif" and summary["frames"] == K
    assert _pngs(tmp_path / "out" / "frames") == [f"{k}.png" for k in range(K)]
    assert _gif_frames(tmp_path / "out" / "transfer.gif") == K


def test_num_frames_limits_and_same_seed_same_frames(inputs, tmp_path):
    full = tmp_path / "full"
    _run(inputs, full, seed=5)
    again = tmp_path / "again"
    _run(inputs, again, seed=5)
    short = tmp_path / "short"
    assert _run(inputs, short, seed=5, num_frames=3)["frames"] == 3
    other = tmp_path / "other"
    _run(inputs, other, seed=6)
    assert _pngs(short / "frames") == ["0.png", "1.png", "2.png"]
    assert _gif_frames(short / "transfer.gif") == 3
    for k in range(K):
        assert (again / "frames" / f"{k}.png").read_bytes() == (full / "frames" / f"{k}.png").read_bytes()
    for k in range(3):  # one generator, drawn in frame order: the short run is the long run's start
        np.testing.assert_array_equal(_frame(short / "frames" / f"{k}.png"),
                                      _frame(full / "frames" / f"{k}.png"))
    assert not np.array_equal(_frame(other / "frames" / "4.png"), _frame(full / "frames" / "4.png"))


def test_mean_z_is_deterministic_across_seeds(inputs, tmp_path):
    _run(inputs, tmp_path / "a", z_mode="mean", seed=1)
    _run(inputs, tmp_path / "b", z_mode="mean", seed=2)
    for k in range(K):
        assert (tmp_path / "a" / "frames" / f"{k}.png").read_bytes() == \
            (tmp_path / "b" / "frames" / f"{k}.png").read_bytes()


def _bad_inputs(inputs, tmp_path) -> list[tuple[dict, str]]:
    """(transfer arguments, a string the UserError must contain) for each kind of bad input."""
    tmp_path.mkdir()
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    bad_pose = tmp_path / "bad_pose"
    for k in range(3):
        _write_png(bad_pose / f"{k}.png", np.zeros((H, W, 3), np.uint8))
    (bad_pose / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    empty = tmp_path / "empty"
    empty.mkdir()
    one = tmp_path / "one"
    _write_png(one / "0.png", np.zeros((H, W, 3), np.uint8))
    not_images = tmp_path / "not_images"
    not_images.mkdir()
    (not_images / "0.jpg").write_bytes(b"jpeg?")
    (not_images / "readme.txt").write_text("hello")
    unnumbered = tmp_path / "unnumbered"
    for name in ("0.png", "1.png", "pose.png"):
        _write_png(unnumbered / name, np.zeros((H, W, 3), np.uint8))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    bad_gif = tmp_path / "bad.gif"
    bad_gif.write_bytes(b"GIF89a broken")
    return [
        ({"first": tmp_path / "missing.png"}, "missing.png"),
        ({"first": tmp_path}, str(tmp_path)),
        ({"first": garbage}, "garbage.png"),
        ({"poses": bad_pose}, str(bad_pose / "1.png")),
        ({"poses": empty}, str(empty)),
        ({"poses": one}, str(one)),
        ({"poses": not_images}, "0.jpg"),
        ({"poses": unnumbered}, "pose.png"),
        ({"poses": tmp_path / "nowhere"}, "nowhere"),
        ({"poses": blocker}, "a_file"),
        ({"poses": bad_gif}, "bad.gif"),
        ({"num_frames": K + 1}, "--num_frames"),
        ({"num_frames": 1}, "--num_frames"),
        ({"z_mode": "median"}, "z_mode"),
        ({"noise_scale": float("nan")}, "noise_scale"),
    ]


def test_bad_input_is_one_user_error_and_leaves_no_output(inputs, tmp_path):
    out = tmp_path / "out"
    for kw, needle in _bad_inputs(inputs, tmp_path / "in"):
        with pytest.raises(UserError) as info:
            _run(inputs, out, **kw)
        message = str(info.value)
        assert needle in message, (kw, message)
        assert "\n" not in message, message
        assert not out.exists(), f"{kw} created the output folder"


def test_a_corrupt_pose_image_gets_a_fix_for_a_pose_folder(inputs, tmp_path):
    """The lab reader's advice (delete the image 'and its frame/label partner') does not fit a pose folder."""
    poses = tmp_path / "poses"
    for k in range(3):
        _write_png(poses / f"{k}.png", np.zeros((H, W, 3), np.uint8))
    (poses / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(UserError) as info:
        _run(inputs, tmp_path / "out", poses=poses)
    message = str(info.value)
    assert str(poses / "1.png") in message and "partner" not in message
    assert "re-export" in message.lower()


def test_unwritable_out_and_missing_checkpoint(inputs, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="a_file"):
        _run(inputs, blocker / "out")
    with pytest.raises(UserError, match="does not exist"):
        transfer(tmp_path / "missing.safetensors", inputs["first"], inputs["poses"], tmp_path / "o",
                 progress=False)
    assert not (tmp_path / "o").exists()


def test_a_video_without_imageio_ffmpeg_says_how_to_fix_it(inputs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails
    video = tmp_path / "poses.mp4"
    video.write_bytes(b"\x00" * 64)
    with pytest.raises(UserError, match="pip install imageio-ffmpeg") as info:
        _run(inputs, tmp_path / "out", poses=video)
    assert "poses.mp4" in str(info.value) and not (tmp_path / "out").exists()


def test_a_video_of_poses_with_imageio_ffmpeg(inputs, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    from posevae.media import save_mp4

    poses = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (K, 3, H, W), dtype=np.uint8))
    assert save_mp4(tmp_path / "poses.mp4", poses, fps=20)
    # noise is not mostly black, so the automatic rule would take it for a person: say it holds pose images
    summary = _run(inputs, tmp_path / "out", poses=tmp_path / "poses.mp4", poses_from_video=False)
    assert summary["poses_kind"] == "video" and summary["frames"] == K


# -------------------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="posevae")
    sub = parser.add_subparsers(dest="command", required=True)
    add_transfer_command(sub)
    data = sub.add_parser("data").add_subparsers(dest="data_command", required=True)
    add_data_poses_command(data)
    return parser


def test_cli_transfer(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    args = _parser().parse_args([
        "transfer", "--ckpt_path", str(inputs["ckpt"]), "--first_frame", str(inputs["first"]),
        "--poses", str(inputs["poses"]), "--out", str(out), "--num-frames", "4", "--noise-scale", "0.25",
        "--z-mode", "sample", "--seed", "2", "--device", "cpu", "--quiet"])
    args.func(args)
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "4 frames" in printed[0] and "transfer.gif" in printed[0]
    assert _pngs(out / "frames") == ["0.png", "1.png", "2.png", "3.png"]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["noise_scale"], summary["seed"], summary["frames"]) == (0.25, 2, 4)


def test_cli_help(capsys):
    for argv in (["transfer", "--help"], ["data", "poses", "--help"]):
        with pytest.raises(SystemExit) as info:
            _parser().parse_args(argv)
        assert info.value.code == 0
    assert "--clip" in capsys.readouterr().out


# ----------------------------------------------------------------------------------- demo pose renderer


def test_demo_poses_of_an_unseen_clip_drive_a_transfer(inputs, tmp_path, capsys):
    pytest.importorskip("pybullet")
    from posevae.data.demo import motion as demo_motion
    from posevae.data.demo.poses import DEFAULT_CLIP, available_clips, unseen_clips

    unseen = unseen_clips()
    assert unseen and DEFAULT_CLIP in unseen and not set(unseen) & set(demo_motion.CLIPS)
    assert set(demo_motion.CLIPS) < set(available_clips())
    poses = tmp_path / "poses"
    args = _parser().parse_args(["data", "poses", "--out", str(poses), "--frames", "8", "--height", "32",
                                 "--width", "64", "--seed", "1", "--quiet"])
    args.func(args)
    assert "never plays" in capsys.readouterr().out
    assert _pngs(poses) == [f"{k}.png" for k in range(8)]
    assert _pngs(poses / "frames") == [f"{k}.png" for k in range(8)]
    assert np.load(poses / "keypoints.npy").shape[0] == 8
    marker = json.loads((poses / "poses.json").read_text())
    assert marker["clip"] == DEFAULT_CLIP and marker["seen_in_demo_training"] is False
    assert _frame(poses / "3.png").shape == (32, 64, 3) and _frame(poses / "3.png").any()  # a skeleton
    summary = _run(inputs, tmp_path / "out", first=poses / "frames" / "0.png", poses=poses)
    assert summary["frames"] == 8 and _pngs(tmp_path / "out" / "frames") == [f"{k}.png" for k in range(8)]

    before = (poses / "5.png").read_bytes()  # the same arguments again: the folder is replaced, same bytes
    args.func(args)
    assert (poses / "5.png").read_bytes() == before and not list(tmp_path.glob(".poses*"))


def test_demo_poses_bad_options(tmp_path):
    pytest.importorskip("pybullet")
    from posevae.data.demo.poses import render_clip_poses

    with pytest.raises(UserError, match="getup_faceup") as info:  # the message lists the valid clips
        render_clip_poses(tmp_path / "p", clip="moonwalk", n_frames=8, progress=False)
    assert "moonwalk" in str(info.value) and "dance_a" in str(info.value)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="refusing to overwrite"):
        render_clip_poses(foreign, n_frames=8, progress=False)
    with pytest.raises(UserError, match="--frames"):
        render_clip_poses(tmp_path / "p", n_frames=1, progress=False)
    assert (foreign / "keep.txt").read_text() == "mine" and not (tmp_path / "p").exists()
