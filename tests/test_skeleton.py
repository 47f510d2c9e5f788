"""The two pose drawings (posevae.data.skeleton: demo and OpenPose COCO-18), the OpenPose landmark mapping,
and where the drawing is chosen and recorded: ``data from-video --skeleton``, keypoints.json, the run's
config, ``transfer --skeleton`` and its warning. Runs without MediaPipe (its landmarks are made by hand)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from posevae.cli.data import add_data_from_video_command
from posevae.cli.evaluation import add_transfer_command
from posevae.config import DataConfig, RunConfig, TrainConfig
from posevae.data.skeleton import (
    DEMO,
    JOINT_COLORS,
    JOINT_INDEX,
    LIMB_COLORS,
    LIMB_PAIRS,
    OPENPOSE,
    SKELETON_NAMES,
    SKELETONS,
    draw_skeleton,
    keypoint_spec,
)
from posevae.data.video import VideoOptions, from_video
from posevae.data.video.estimate import Landmarks, map_landmarks
from posevae.errors import UserError
from posevae.evaluation.transfer import skeleton_notice, transfer
from posevae.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from posevae.model.vae import PoseVAE
from posevae.training.setup import data_skeleton, record_data_skeleton
from tests.conftest import tiny_model_config

BLACK = (0, 0, 0)
OP = {name: i for i, name in enumerate(OPENPOSE.joints)}

# a person facing the camera in a 100 x 100 image, OpenPose joint order; pixel centres at +0.5
BODY = {
    "nose": (50, 20), "neck": (50, 30),
    "right_shoulder": (40, 30), "right_elbow": (36, 45), "right_wrist": (30, 60),
    "left_shoulder": (60, 30), "left_elbow": (64, 45), "left_wrist": (70, 60),
    "right_hip": (45, 60), "right_knee": (45, 75), "right_ankle": (45, 90),
    "left_hip": (55, 60), "left_knee": (55, 75), "left_ankle": (55, 90),
    "right_eye": (46, 16), "left_eye": (54, 16), "right_ear": (42, 20), "left_ear": (58, 20),
}  # fmt: skip
# the demo layout's extra joints (14-17) for the same person
DEMO_EXTRA = {"pelvis": (50, 60), "chest": (50, 45), "right_toe": (41, 94), "left_toe": (59, 94)}


def openpose_body() -> np.ndarray:
    return np.array([BODY[n] for n in OPENPOSE.joints], np.float32) + 0.5


def demo_body() -> np.ndarray:
    where = {**BODY, "head": BODY["nose"], **DEMO_EXTRA}
    return np.array([where[n] for n in DEMO.joints], np.float32) + 0.5


def pixel(img: Image.Image, xy: tuple[float, float]) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(img)[int(xy[1]), int(xy[0])])


def middle(kp: np.ndarray, a: int, b: int) -> tuple[float, float]:
    x, y = (kp[a] + kp[b]) / 2
    return float(x), float(y)


# ------------------------------------------------------------------------------------------- drawing


def test_openpose_drawing_puts_its_colours_where_openpose_does():
    kp = openpose_body()
    img = draw_skeleton(kp, 100, 100, "openpose")
    assert pixel(img, kp[OP["nose"]]) == (255, 0, 85)  # joint k in colour k
    assert pixel(img, kp[OP["neck"]]) == (255, 0, 0)
    assert pixel(img, kp[OP["left_ear"]]) == (85, 0, 255)
    # a limb has its second joint's colour: neck-right shoulder that of joint 2, not of limb 0 (255, 0, 85)
    assert pixel(img, middle(kp, OP["neck"], OP["right_shoulder"])) == (255, 85, 0)
    assert pixel(img, middle(kp, OP["right_hip"], OP["right_knee"])) == (0, 255, 170)
    assert pixel(img, middle(kp, OP["nose"], OP["left_eye"])) == (170, 0, 255)
    for far in ((5, 5), (95, 5), (5, 95), (95, 95), (50, 97)):
        assert pixel(img, far) == BLACK
    used = {tuple(c) for c in np.asarray(img).reshape(-1, 3)}
    assert used <= {BLACK, *OPENPOSE.joint_colors}  # no blending, no other colour


def test_openpose_drawing_leaves_out_a_missing_joint_and_its_limbs():
    kp = openpose_body()
    kp[OP["right_elbow"]] = np.nan
    img = draw_skeleton(kp, 100, 100, "openpose")
    assert pixel(img, openpose_body()[OP["right_elbow"]]) == BLACK
    assert pixel(img, kp[OP["right_shoulder"]]) == (255, 85, 0)  # still drawn
    full = openpose_body()
    for a, b in (("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist")):
        assert pixel(img, middle(full, OP[a], OP[b])) == BLACK
    assert pixel(img, kp[OP["right_wrist"]]) == (255, 255, 0)  # the wrist itself is seen


def test_openpose_thickness_follows_the_person_size():
    tall = openpose_body() * 3  # a 300 x 300 frame, the person 0.74 of its height
    # t = max(round(300 / 75 * 0.74), 2) = 3: lines round(2.25) = 2 wide, joints a ring of radius 1, width 3
    assert OPENPOSE.sizes(tall, 300, 300) == (2, 2.5)
    full = np.full((18, 2), np.nan)
    full[OP["nose"]], full[OP["neck"]] = (10.5, 0.5), (10.5, 299.5)  # the whole height: t = 4
    assert OPENPOSE.sizes(full, 300, 300) == (3, 4.0)
    tiny = np.array([[10.5, 10.5], [10.5, 20.5]])  # under 5% of the frame: a filled circle of radius t // 2
    assert OPENPOSE.sizes(tiny, 300, 300) == (2, 1.0)
    big = np.asarray(draw_skeleton(full, 300, 300, "openpose"))
    assert (big[150, :, :].any(axis=1)).sum() == 3  # the neck-nose line, 3 pixels wide
    assert (big[0:10, :, :].any(axis=2)).sum(axis=1).max() == 9  # the nose: a disc of radius 4
    with pytest.raises(ValueError, match=r"draws \(18, 2\) keypoints"):
        draw_skeleton(full[:2], 300, 300, "openpose")


def test_openpose_strokes_shrink_with_a_model_sized_frame():
    """At 32x64 OpenPose's least thickness (2 px: joint rings of radius 2) would cover a small person's
    limbs: below 150 px the strokes shrink with the frame, to 1-px lines and joints of radius 1."""
    person = openpose_body() * 0.2 + [20, 6]  # about 15 px tall in a 32 x 64 frame
    assert OPENPOSE.sizes(person, 64, 32) == (1, 1.0)
    img = np.asarray(draw_skeleton(person, 64, 32, "openpose"))
    lit = img.any(axis=2).sum()
    assert 0 < lit < 0.06 * 64 * 32, lit  # thin strokes: 79 pixels lit; OpenPose's 2-px strokes lit 178
    assert OPENPOSE.sizes(openpose_body() * 1.5, 150, 150)[0] == 2  # from 150 px on, OpenPose's own rule


def test_demo_drawing_is_unchanged_and_checks_the_same_way():
    kp = demo_body()
    img = draw_skeleton(kp, 100, 100, "demo")
    assert np.array_equal(np.asarray(img), np.asarray(draw_skeleton(kp, 100, 100)))  # the default
    assert pixel(img, kp[JOINT_INDEX["head"]]) == DEMO.joint_colors[0] == (255, 0, 0)
    thigh = middle(kp, JOINT_INDEX["right_hip"], JOINT_INDEX["right_knee"])
    assert pixel(img, thigh) == LIMB_COLORS[3] == (0, 255, 85)  # a limb has its own colour
    for far in ((5, 5), (95, 5), (5, 95), (95, 95)):
        assert pixel(img, far) == BLACK
    kp[JOINT_INDEX["right_elbow"]] = np.nan
    gone = draw_skeleton(kp, 100, 100, "demo")
    full = demo_body()
    for a, b in (("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist")):
        assert pixel(gone, middle(full, JOINT_INDEX[a], JOINT_INDEX[b])) == BLACK
    # pixel for pixel the drawing of the code before there were two skeletons
    for h, w in ((64, 128), (32, 64), (100, 100)):
        small = demo_body() * np.array([w / 100, h / 100], np.float32)
        small[JOINT_INDEX["left_toe"]] = np.nan
        assert np.array_equal(np.asarray(draw_skeleton(small, w, h, "demo")), _demo_before(small, w, h))


def _demo_before(kp: np.ndarray, width: int, height: int) -> np.ndarray:
    """draw_skeleton as it was before the OpenPose drawing was added (git 1601126)."""
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    lw = max(1, round(height / 32))
    seen = [bool(f.all()) for f in np.isfinite(kp)]
    pts = [(float(x) - 0.5, float(y) - 0.5) for x, y in kp]
    for (a, b), col in zip(LIMB_PAIRS, LIMB_COLORS, strict=True):
        if seen[a] and seen[b]:
            draw.line([pts[a], pts[b]], fill=col, width=lw)
    r = max(1.0, lw * 0.6)
    for (x, y), col, ok in zip(pts, JOINT_COLORS, seen, strict=True):
        if ok:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=col)
    return np.asarray(img)


def test_the_skeletons_by_name_and_what_keypoints_json_records():
    assert SKELETON_NAMES == ("demo", "openpose") and tuple(SKELETONS) == SKELETON_NAMES
    assert DEMO.joints[1:14] == OPENPOSE.joints[1:14]  # the shared indices other code relies on
    assert OPENPOSE.limb_pairs[0] == (1, 2) and OPENPOSE.limb_pairs[-1] == (15, 17)
    assert len(OPENPOSE.limbs) == 17
    assert keypoint_spec()["skeleton"] == "demo"  # what the demo dataset writes
    spec = keypoint_spec("openpose")
    assert spec["skeleton"] == "openpose" and spec["joints"] == list(OPENPOSE.joints)
    assert spec["limb_colors"][0] == [255, 85, 0]
    with pytest.raises(ValueError, match="unknown skeleton"):
        draw_skeleton(openpose_body(), 10, 10, "coco")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- mapping


def test_openpose_mapping_of_mediapipe_landmarks():
    xy = np.stack([np.arange(33), 100 + np.arange(33)], axis=1).astype(np.float32)[None]  # i: (i, 100 + i)
    vis = np.ones((1, 33), np.float32)
    joints = map_landmarks(Landmarks(xy, vis), skeleton="openpose")
    assert joints.shape == (1, 18, 2)
    expected = {"nose": 0, "right_shoulder": 12, "right_elbow": 14, "right_wrist": 16, "left_shoulder": 11,
                "left_elbow": 13, "left_wrist": 15, "right_hip": 24, "right_knee": 26, "right_ankle": 28,
                "left_hip": 23, "left_knee": 25, "left_ankle": 27, "right_eye": 5, "left_eye": 2,
                "right_ear": 8, "left_ear": 7}
    for name, i in expected.items():
        assert tuple(joints[0, OP[name]]) == (i, 100 + i), name
    assert tuple(joints[0, OP["neck"]]) == (11.5, 111.5)  # the shoulders' midpoint
    vis[0, 11] = 0.1  # the left shoulder not seen: the neck neither
    joints = map_landmarks(Landmarks(xy, vis), skeleton="openpose")
    assert np.isnan(joints[0, OP["left_shoulder"]]).all() and np.isnan(joints[0, OP["neck"]]).all()
    assert tuple(joints[0, OP["right_shoulder"]]) == (12, 112)
    demo = map_landmarks(Landmarks(xy, vis))  # the default is the demo's mapping: head between the ears
    assert tuple(demo[0, JOINT_INDEX["head"]]) == (7.5, 107.5)


# ---------------------------------------------------------------------- from-video, keypoints.json, CLI

# MediaPipe landmarks of a person facing the camera in a 240 x 320 frame (the rest are not seen)
LANDMARKS = {
    0: (160, 60), 2: (165, 55), 5: (155, 55), 7: (170, 60), 8: (150, 60),
    11: (180, 90), 12: (140, 90), 13: (190, 120), 14: (130, 120), 15: (195, 150), 16: (125, 150),
    23: (172, 150), 24: (148, 150), 25: (172, 185), 26: (148, 185), 27: (172, 220), 28: (148, 220),
    31: (178, 228), 32: (142, 228),
}  # fmt: skip
N_FRAMES = 30


def walking_person(n: int = N_FRAMES) -> Landmarks:
    xy = np.full((n, 33, 2), np.nan, np.float32)
    for i, p in LANDMARKS.items():
        xy[:, i] = np.asarray(p, np.float32) + np.stack([np.arange(n), np.zeros(n)], axis=1)  # 1 px a frame
    return Landmarks(xy, np.isfinite(xy[..., 0]).astype(np.float32))


@pytest.fixture()
def person_frames(tmp_path, monkeypatch) -> Path:
    """A folder of N_FRAMES frames whose 'MediaPipe' (pipeline._estimate, patched) sees walking_person."""
    import posevae.data.video.pipeline as pipeline

    frames = tmp_path / "person"
    frames.mkdir()
    for k in range(N_FRAMES):
        Image.fromarray(np.full((240, 320, 3), 60 + k, np.uint8)).save(frames / f"{k}.png")
    landmarks = walking_person()

    def estimate(stream, static, total, progress):
        n = sum(1 for _ in stream)
        return list(landmarks.xy[:n]), list(landmarks.visibility[:n])

    monkeypatch.setattr(pipeline, "_estimate", estimate)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # transfer's default cache folder
    return frames


@pytest.mark.parametrize("skeleton", ["openpose", "demo"])
def test_from_video_draws_and_records_the_skeleton(person_frames, tmp_path, skeleton):
    out = tmp_path / "out"
    options = VideoOptions(val_len=6, test_len=6, n_test=1, clip_len=4, use_cache=False, skeleton=skeleton)
    summary = from_video(person_frames, out, options, progress=False)
    assert summary["skeleton"] == skeleton
    assert json.loads((out / "from_video.json").read_text())["skeleton"] == skeleton
    spec = json.loads((out / "keypoints.json").read_text())
    assert spec["skeleton"] == skeleton and spec["joints"] == list(SKELETONS[skeleton].joints)
    assert data_skeleton(out) == skeleton
    label = np.asarray(Image.open(out / "train" / "train_label" / "0.png"))
    kp = np.load(out / "train" / "train_keypoints.npy")[0]
    assert np.isfinite(kp).all()  # every joint of either layout is seen
    assert np.array_equal(label, np.asarray(draw_skeleton(kp, 64, 32, skeleton)))  # drawn as asked
    other = next(s for s in SKELETON_NAMES if s != skeleton)
    assert not np.array_equal(label, np.asarray(draw_skeleton(kp, 64, 32, other)))
    if skeleton == "openpose":  # joint 14 is the right eye, above the neck (the demo's 14 is the pelvis)
        assert kp[OP["right_eye"], 1] < kp[OP["neck"], 1]


def test_bad_skeleton_option_and_the_cli_flag(capsys):
    with pytest.raises(UserError, match="--skeleton must be one of demo, openpose"):
        VideoOptions(skeleton="coco").validate(Path("x.mp4"))  # type: ignore[arg-type]
    parser = argparse.ArgumentParser(prog="posevae")
    sub = parser.add_subparsers(dest="command", required=True)
    add_data_from_video_command(sub)
    add_transfer_command(sub)
    assert parser.parse_args(["from-video", "in.mp4", "--out", "d"]).skeleton == "demo"
    assert parser.parse_args(["from-video", "in.mp4", "--out", "d", "--skeleton", "openpose"]).skeleton == (
        "openpose")
    base = ["transfer", "--ckpt", "c", "--first-frame", "f.png", "--poses", "p.mp4"]
    assert parser.parse_args(base).skeleton is None  # the checkpoint's data's drawing
    assert parser.parse_args([*base, "--skeleton", "openpose"]).skeleton == "openpose"
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--skeleton", "coco"])
    assert "invalid choice" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- the run's config


def test_the_dataset_record_and_old_configs(tmp_path):
    assert data_skeleton(tmp_path) is None  # no record: unknown
    (tmp_path / "from_video.json").write_text(json.dumps({"skeleton": "openpose"}))
    assert data_skeleton(tmp_path) == "openpose"
    (tmp_path / "keypoints.json").write_text(json.dumps({"skeleton": "demo"}))
    assert data_skeleton(tmp_path) == "demo"
    (tmp_path / "keypoints.json").write_text("{broken")
    assert data_skeleton(tmp_path) == "openpose"
    cfg = RunConfig(data=DataConfig(DR=str(tmp_path)))
    assert cfg.data.skeleton is None and record_data_skeleton(cfg).data.skeleton == "openpose"
    stored = RunConfig().to_dict()
    del stored["data"]["skeleton"]  # a config written before the record
    assert RunConfig.from_dict(stored).data.skeleton is None
    with pytest.raises(UserError, match="data.skeleton must be one of"):
        DataConfig(skeleton="coco")


def test_a_run_records_its_datas_drawing_and_resumes_without_it(tmp_path, monkeypatch):
    from posevae.training.loop import train
    from tests.conftest import ctrl_c_at_epoch
    from tests.synthetic import make_lab_dataset

    data = make_lab_dataset(tmp_path / "data", n_train=24, n_val=10)
    (data / "keypoints.json").write_text(json.dumps(keypoint_spec("openpose")))
    cfg = RunConfig(model=tiny_model_config(), data=DataConfig(DR=str(data), train_vi_len=6, val_vi_len=10),
                    train=TrainConfig(save_root=str(tmp_path / "run"), batch_size=2, num_epoch=2,
                                      kl_anneal_type="None", precision="fp32"))
    ctrl_c_at_epoch(monkeypatch, 1)
    with pytest.raises(UserError, match="resume"):
        train(cfg, progress=False)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["skeleton"] == "openpose"
    monkeypatch.undo()
    (data / "keypoints.json").unlink()  # neither the data nor the requested config know it now
    train(cfg, resume=True, progress=False)  # not another config: the record is kept from the checkpoint
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors").config.data.skeleton == (
        "openpose")


# ------------------------------------------------------------------------------------------ transfer


def _checkpoint(path: Path, skeleton: str | None) -> Path:
    torch.manual_seed(0)
    config = RunConfig(model=tiny_model_config(16, 32), data=DataConfig(skeleton=skeleton))
    save_checkpoint(path, Checkpoint(config, PoseVAE(config.model).state_dict()))
    return path


def _transfer(tmp_path: Path, ckpt: Path, poses: Path, **kw) -> tuple[dict, list[str]]:
    first = tmp_path / "first.png"
    Image.fromarray(np.full((32, 64, 3), 90, np.uint8)).save(first)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = transfer(ckpt, first, poses, tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}",
                           device="cpu", progress=False, num_frames=4, normalise=False, **kw)
    notices = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return summary, [n for n in notices if "drawn as" in n]


def test_transfer_warns_when_the_drawing_differs_from_the_checkpoints(person_frames, tmp_path):
    ckpt = _checkpoint(tmp_path / "demo.safetensors", "demo")
    summary, notices = _transfer(tmp_path, ckpt, person_frames, poses_from_video=True, skeleton="openpose")
    assert len(notices) == 1 and "\n" not in notices[0]
    assert "drawn as openpose, but the model was trained on demo" in notices[0]
    assert "--skeleton demo" in notices[0]
    assert summary["pose_extraction"]["skeleton"] == "openpose"
    assert summary["pose_extraction"]["trained_skeleton"] == "demo"


def test_transfer_is_silent_when_they_match_and_follows_the_checkpoint(person_frames, tmp_path):
    ckpt = _checkpoint(tmp_path / "openpose.safetensors", "openpose")
    summary, notices = _transfer(tmp_path, ckpt, person_frames, poses_from_video=True)
    assert notices == [] and summary["pose_extraction"]["skeleton"] == "openpose"  # the default follows it
    summary, notices = _transfer(tmp_path, ckpt, person_frames, poses_from_video=True, skeleton="openpose")
    assert notices == []


def test_transfer_says_when_it_cannot_know(person_frames, tmp_path):
    ckpt = _checkpoint(tmp_path / "unknown.safetensors", None)
    summary, notices = _transfer(tmp_path, ckpt, person_frames, poses_from_video=True)
    assert len(notices) == 1 and notices[0].startswith("Cannot tell") and "\n" not in notices[0]
    assert "training data recorded no pose drawing" in notices[0]
    assert summary["pose_extraction"]["skeleton"] == "demo"  # unknown: drawn as the demo's
    template = Checkpoint(RunConfig(), {}, {"source": "course template"})
    notice = skeleton_notice(template, "demo", "dance.mp4")
    assert notice is not None and "course-template checkpoint" in notice and notice.startswith("Cannot tell")
    assert skeleton_notice(dataclasses.replace(template, config=RunConfig(data=DataConfig(skeleton="demo"))),
                           "demo", "dance.mp4") is None


def test_transfer_from_pose_images_says_nothing(tmp_path):
    poses = tmp_path / "poses"
    poses.mkdir()
    for k in range(4):
        draw_skeleton(openpose_body() * 0.3, 32, 16, "openpose").save(poses / f"{k}.png")
    ckpt = _checkpoint(tmp_path / "demo.safetensors", "demo")
    summary, notices = _transfer(tmp_path, ckpt, poses, skeleton="openpose")
    assert notices == [] and "pose_extraction" not in summary
