"""Test generation (posevae.evaluation) and the media writers (posevae.media), on a tiny model and data."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import posevae.evaluation.predict as predict_module
from posevae.config import SEED_STRIDE, RunConfig
from posevae.device import resolve_device
from posevae.errors import UserError
from posevae.evaluation.predict import predict_test_split
from posevae.evaluation.scores import SAMPLE_COLUMNS
from posevae.evaluation.submission import write_submission
from posevae.media import save_frames_png, save_gif, save_mp4, side_by_side, to_uint8
from posevae.metrics import psnr, ssim
from posevae.model.checkpoint import Checkpoint, model_from_checkpoint, save_checkpoint
from posevae.model.vae import PoseVAE
from tests.conftest import tiny_model_config

H, W, N_FRAMES, N_SEQ = 16, 32, 6, 2


def _write_png(path: Path, pixels: np.ndarray) -> None:  # pixels (3, H, W) uint8
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.transpose(1, 2, 0)).save(path)


EMPTY_LABEL = ("1", 2)  # sequence "1", frame 2: haze only, no pose pixel


def _labels(rng: np.random.Generator, empty: int | None) -> np.ndarray:
    """(N, 3, H, W) pose labels: haze of 0..5 everywhere (below the pose threshold), and a bright 3x4 patch
    at a random place in every frame but ``empty``."""
    labels = rng.integers(0, 6, (N_FRAMES, 3, H, W), dtype=np.uint8)
    for k in range(N_FRAMES):
        if k != empty:
            y, x = rng.integers(0, H - 3), rng.integers(0, W - 4)
            labels[k, :, y:y + 3, x:x + 4] = rng.integers(100, 256, (3, 3, 4), dtype=np.uint8)
    return labels


def _make_test_layout(DR: Path, names: list[str], seed: int = 0) -> dict[str, np.ndarray]:
    """DR/test/test_img/<i>/0.png, test_label/<i>/<k>.png, test_gt/<i>/<k>.png; returns the truth per name."""
    rng = np.random.default_rng(seed)
    truths = {}
    for name in names:
        truth = rng.integers(0, 256, (N_FRAMES, 3, H, W), dtype=np.uint8)
        labels = _labels(rng, EMPTY_LABEL[1] if name == EMPTY_LABEL[0] else None)
        _write_png(DR / "test" / "test_img" / name / "0.png", truth[0])
        for k in range(N_FRAMES):
            _write_png(DR / "test" / "test_label" / name / f"{k}.png", labels[k])
            _write_png(DR / "test" / "test_gt" / name / f"{k}.png", truth[k])
        truths[name] = truth
    return truths


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("generate")
    torch.manual_seed(0)
    config = RunConfig(model=tiny_model_config(H, W))
    model = PoseVAE(config.model)
    ckpt = root / "tiny.safetensors"
    save_checkpoint(ckpt, Checkpoint(config, model.state_dict()))
    DR = root / "DR"
    truths = _make_test_layout(DR, [str(i) for i in range(N_SEQ)])
    return ckpt, DR, truths, root


def _person_psnr_numpy(pred: np.ndarray, truth: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    """Pose-region and person-box PSNR of one uint8 (3, H, W) frame, written out apart from posevae.metrics:
    pose pixels = any channel >= 6 (> 0.02 of 255), grown by one pixel; the box = their rows and columns
    padded by 2 and clipped."""
    pose = (label >= 6).any(axis=0)
    if not pose.any():
        return math.nan, math.nan
    padded = np.pad(pose, 1)
    region = np.zeros_like(pose)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            region |= padded[dy:dy + H, dx:dx + W]
    ys, xs = np.nonzero(pose)
    box = np.zeros_like(pose)
    box[max(ys.min() - 2, 0):ys.max() + 3, max(xs.min() - 2, 0):xs.max() + 3] = True
    sq_err = ((pred.astype(np.float64) - truth) / 255) ** 2  # (3, H, W)
    return tuple(10 * math.log10(1 / sq_err[:, mask].mean()) for mask in (region, box))


@pytest.fixture(scope="module")
def full_run(setup):
    ckpt, DR, truths, root = setup
    out = root / "out"
    summary = predict_test_split(ckpt, DR, out, seed=3, device="cpu", progress=False)
    return out, summary


def _run(setup, out_name: str, **kw) -> Path:
    ckpt, DR, _, root = setup
    out = root / out_name
    predict_test_split(ckpt, DR, out, device="cpu", progress=False, write_frames=False, **kw)
    return out


def _read_submission(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path) as f:
        header = f.readline().strip().split(",")
    return header, np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)


def test_submission_csv_is_the_course_format(setup, full_run):
    _, _, truths, _ = setup
    out, _ = full_run
    header, rows = _read_submission(out / "submission.csv")
    n_values = 3 * H * W
    assert header == ["id"] + [str(i) for i in range(n_values)]
    assert rows.shape == (N_SEQ * N_FRAMES, 1 + n_values)
    assert rows[:, 0].tolist() == list(range(N_SEQ * N_FRAMES))
    assert rows[:, 1:].min() >= 0 and rows[:, 1:].max() <= 255
    for i in range(N_SEQ):  # frame 0 of each sequence is the given first frame, C,H,W order
        np.testing.assert_array_equal(rows[i * N_FRAMES, 1:], truths[str(i)][0].reshape(-1))
    # generated frames are not all copies of the first frame
    assert not np.array_equal(rows[1, 1:], rows[0, 1:])


def test_gifs_frames_and_summary_are_written(setup, full_run):
    out, summary = full_run
    rows = _read_submission(out / "submission.csv")[1][:, 1:].reshape(N_SEQ, N_FRAMES, 3, H, W)
    for i in range(N_SEQ):
        # Pillow merges identical consecutive frames; count what it should keep
        distinct = 1 + sum(not np.array_equal(rows[i, k], rows[i, k - 1]) for k in range(1, N_FRAMES))
        for gif, width in ((f"pred_seq{i}.gif", W), (f"compare_seq{i}.gif", 2 * W + 2)):
            with Image.open(out / gif) as im:
                assert im.n_frames == distinct == N_FRAMES
                assert im.size == (width * 8, H * 8)  # upscaled to >= 128 px high
        pngs = sorted((out / f"seq{i}" / "frames").glob("*.png"))
        assert len(pngs) == N_FRAMES
        last = np.asarray(Image.open(out / f"seq{i}" / "frames" / f"{N_FRAMES - 1}.png")).transpose(2, 0, 1)
        np.testing.assert_array_equal(last, rows[i, -1])
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    assert set(summary["sequences"]) == {"0", "1"}
    for entry in summary["sequences"].values():
        assert {"psnr", "ssim", "baseline_psnr"} <= set(entry)
    assert summary["seed"] == 3 and summary["noise_scale"] == RunConfig().sample.noise_scale
    assert summary["mean_baseline_psnr"] == pytest.approx(
        np.mean([e["baseline_psnr"] for e in summary["sequences"].values()]))
    assert not list(out.glob(".*")), "temporary files left behind"


def test_scores_recompute_from_the_submission_csv(setup, full_run):
    _, _, truths, _ = setup
    out, summary = full_run
    rows = _read_submission(out / "submission.csv")[1][:, 1:].reshape(N_SEQ, N_FRAMES, 3, H, W)
    lines = (out / "scores.csv").read_text().splitlines()
    assert lines[0].split(",")[:4] == ["sequence", "frame", "psnr", "ssim"]
    scores = [line.split(",") for line in lines[1:]]
    assert len(scores) == N_SEQ * (N_FRAMES - 1)  # frames 1..N-1
    for i in range(N_SEQ):
        pred = torch.from_numpy(rows[i]).float() / 255
        truth = torch.from_numpy(truths[str(i)]).float() / 255
        want_psnr = psnr(pred[1:], truth[1:])
        want_ssim = ssim(pred[1:], truth[1:])
        got = [r for r in scores if r[0] == str(i)]
        assert [int(r[1]) for r in got] == list(range(1, N_FRAMES))
        np.testing.assert_allclose([float(r[2]) for r in got], want_psnr.numpy(), atol=1e-5)
        np.testing.assert_allclose([float(r[3]) for r in got], want_ssim.numpy(), atol=1e-5)
        assert summary["sequences"][str(i)]["psnr"] == pytest.approx(float(want_psnr.mean()), abs=1e-5)
        baseline = psnr(truth[:1].expand(N_FRAMES - 1, -1, -1, -1), truth[1:]).mean()
        assert summary["sequences"][str(i)]["baseline_psnr"] == pytest.approx(float(baseline), abs=1e-5)


def test_scores_have_the_person_metrics_and_skip_empty_labels(setup, full_run):
    ckpt, DR, truths, _ = setup
    out, summary = full_run
    rows = _read_submission(out / "submission.csv")[1][:, 1:].reshape(N_SEQ, N_FRAMES, 3, H, W)
    with open(out / "scores.csv", newline="") as f:
        scores = list(csv.DictReader(f))
    assert list(scores[0]) == ["sequence", "frame", "psnr", "ssim", "baseline_psnr", "psnr_pose", "psnr_box"]
    for i in range(N_SEQ):
        name = str(i)
        labels = [np.asarray(Image.open(DR / "test" / "test_label" / name / f"{k}.png")).transpose(2, 0, 1)
                  for k in range(N_FRAMES)]
        want = np.array([_person_psnr_numpy(rows[i, k], truths[name][k], labels[k])
                         for k in range(1, N_FRAMES)])
        got = np.array([[float(r["psnr_pose"]), float(r["psnr_box"])]
                        for r in scores if r["sequence"] == name])
        np.testing.assert_allclose(got, want, atol=1e-4)  # NaN where NaN
        assert np.isnan(want[:, 0]).sum() == (name == EMPTY_LABEL[0])  # the empty label's frame
        entry = summary["sequences"][name]
        assert entry["psnr_pose"] == pytest.approx(np.nanmean(want[:, 0]), abs=1e-4)
        assert entry["psnr_box"] == pytest.approx(np.nanmean(want[:, 1]), abs=1e-4)
        assert entry["psnr_pose"] != pytest.approx(entry["psnr"], abs=0.01)  # not the whole frame
    for key in ("psnr_pose", "psnr_box"):
        mean = np.mean([e[key] for e in summary["sequences"].values()])
        assert summary[f"mean_{key}"] == pytest.approx(mean)


def test_same_seed_same_csv_other_seed_other_csv(setup, full_run):
    out, _ = full_run
    again = _run(setup, "again", seed=3)
    other = _run(setup, "other", seed=4)
    assert (again / "submission.csv").read_bytes() == (out / "submission.csv").read_bytes()
    assert (other / "submission.csv").read_bytes() != (out / "submission.csv").read_bytes()
    assert not (again / "seq0").exists()  # write_frames=False


def test_a_sequence_does_not_depend_on_the_others(setup, full_run, tmp_path):
    ckpt, _, _, _ = setup
    out, _ = full_run
    DR = tmp_path / "DR"
    _make_test_layout(DR, ["0", "1"])
    for sub in ("test_img", "test_label", "test_gt"):  # keep sequence 1 only
        for f in (DR / "test" / sub / "0").iterdir():
            f.unlink()
        (DR / "test" / sub / "0").rmdir()
    predict_test_split(ckpt, DR, tmp_path / "out", seed=3, device="cpu", progress=False,
                       write_frames=False)
    alone = _read_submission(tmp_path / "out" / "submission.csv")[1][:, 1:]
    full = _read_submission(out / "submission.csv")[1][:, 1:]
    np.testing.assert_array_equal(alone, full[N_FRAMES:])


def test_without_ground_truth_only_the_predictions_are_written(setup, tmp_path):
    ckpt, _, truths, _ = setup
    DR = tmp_path / "DR"
    _make_test_layout(DR, ["0", "1"])
    for f in sorted((DR / "test" / "test_gt").rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    (DR / "test" / "test_gt").rmdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "scores.csv").write_text("stale\n")  # of an earlier run with ground truth
    summary = predict_test_split(ckpt, DR, out, device="cpu", progress=False, write_frames=False)
    assert summary["mean_psnr"] is None
    assert summary["sequences"]["0"] == {"frames": N_FRAMES, "psnr": None, "ssim": None,
                                         "baseline_psnr": None, "psnr_pose": None, "psnr_box": None}
    assert sorted(p.name for p in out.iterdir() if p.suffix != ".mp4") == [  # mp4 if imageio-ffmpeg is here
        "pred_seq0.gif", "pred_seq1.gif", "submission.csv", "summary.json"]
    rows = _read_submission(out / "submission.csv")[1]
    np.testing.assert_array_equal(rows[N_FRAMES, 1:], truths["1"][0].reshape(-1))


def test_noise_scale_zero_sampling_equals_the_mean(setup):
    zero = _run(setup, "zero", noise_scale=0.0, z_mode="sample")
    mean = _run(setup, "mean", z_mode="mean")
    assert (zero / "submission.csv").read_bytes() == (mean / "submission.csv").read_bytes()
    assert json.loads((zero / "summary.json").read_text())["noise_scale"] == 0.0


def test_unwritable_out_is_a_user_error(setup, tmp_path):
    ckpt, DR, _, _ = setup
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="a_file"):
        predict_test_split(ckpt, DR, blocker / "out", device="cpu", progress=False)


def test_bad_options_are_user_errors(setup, tmp_path):
    ckpt, DR, _, _ = setup
    with pytest.raises(UserError, match="z_mode"):
        predict_test_split(ckpt, DR, tmp_path / "o", z_mode="median", progress=False)
    with pytest.raises(UserError, match="does not exist"):
        predict_test_split(tmp_path / "missing.safetensors", DR, tmp_path / "o", progress=False)


def test_num_frames_counts_the_first_frame_and_is_at_least_2(setup, tmp_path):
    ckpt, DR, _, _ = setup
    with pytest.raises(UserError, match=r"--num_frames must be an integer >= 2, got 1: .*first frame incl"):
        predict_test_split(ckpt, DR, tmp_path / "one", num_frames=1, device="cpu", progress=False)
    assert not (tmp_path / "one").exists()
    summary = predict_test_split(ckpt, DR, tmp_path / "two", num_frames=2, device="cpu", progress=False)
    assert sorted(p.name for p in (tmp_path / "two" / "seq0" / "frames").iterdir()) == ["0.png", "1.png"]
    # 2 frames per sequence: said to be no course submission, in summary.json
    assert summary["submission_note"].startswith("submission.csv holds 2 sequences of 2 frames of 16x32")


def test_the_summary_says_when_the_submission_is_not_the_course_shape(full_run):
    _, summary = full_run
    assert summary["submission_note"] == ("submission.csv holds 2 sequences of 6 frames of 16x32 pixels, not "
                                          "the course's 5 x 630 of 32x64: not a course submission.")


def test_write_submission_format(tmp_path):
    a = torch.arange(2 * 3 * 1 * 2, dtype=torch.uint8).reshape(2, 3, 1, 2)
    b = torch.full((1, 3, 1, 2), 255, dtype=torch.uint8)
    assert write_submission(tmp_path / "s.csv", [a, b]) == 3
    assert (tmp_path / "s.csv").read_text() == (
        "id,0,1,2,3,4,5\n0,0,1,2,3,4,5\n1,6,7,8,9,10,11\n2,255,255,255,255,255,255\n")


# ------------------------------------------------------------------------------------------------- media

def test_to_uint8_rounds_and_clamps():
    x = torch.tensor([-0.5, 0.0, 0.5 / 255, 1.49 / 255, 1.51 / 255, 0.5, 1.0, 2.0, float("nan")])
    assert to_uint8(x).tolist() == [0, 0, 0, 1, 2, 128, 255, 255, 0]
    u8 = torch.randint(0, 256, (4, 3, 5, 7), dtype=torch.uint8)
    assert torch.equal(to_uint8(u8.float() / 255), u8)  # exact round trip


def test_side_by_side_shape():
    pred = torch.zeros(5, 3, H, W, dtype=torch.uint8)
    truth = torch.ones(5, 3, H, W, dtype=torch.uint8)
    both = side_by_side(pred, truth, gap=2)
    assert both.shape == (5, 3, H, 2 * W + 2)
    assert both[..., :W].eq(0).all() and both[..., W:W + 2].eq(255).all() and both[..., W + 2:].eq(1).all()
    with pytest.raises(ValueError):
        side_by_side(pred, truth[:4])


def test_save_gif_frame_count_and_scale(tmp_path):
    frames = torch.stack([torch.full((3, H, W), 20 * k, dtype=torch.uint8) for k in range(7)])
    frames[3, 0, 2, 5] = 255
    path = save_gif(tmp_path / "a.gif", frames, fps=20, scale=3)
    with Image.open(path) as im:
        assert im.n_frames == 7 and im.size == (3 * W, 3 * H) and im.info["loop"] == 0
        assert im.info["duration"] == 50
        im.seek(3)
        rgb = np.asarray(im.convert("RGB"))
        assert rgb[2 * 3:3 * 3, 5 * 3:6 * 3, 0].min() == 255  # one pixel became a 3x3 block
    assert [p.name for p in tmp_path.iterdir()] == ["a.gif"]


def test_save_frames_png_replaces_a_folder_whole(tmp_path):
    frames = torch.randint(0, 256, (4, 3, H, W), dtype=torch.uint8)
    folder = save_frames_png(frames, tmp_path / "frames")
    assert sorted(p.name for p in folder.iterdir()) == ["0.png", "1.png", "2.png", "3.png"]
    png = np.asarray(Image.open(folder / "2.png")).transpose(2, 0, 1)
    np.testing.assert_array_equal(png, frames[2].numpy())
    save_frames_png(frames[:2], folder)  # an older, longer folder leaves no stale frames
    assert sorted(p.name for p in folder.iterdir()) == ["0.png", "1.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]


def test_save_mp4_without_ffmpeg_returns_false(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails
    frames = torch.zeros(3, 3, H, W, dtype=torch.uint8)
    assert save_mp4(tmp_path / "a.mp4", frames, fps=20) is False
    assert not (tmp_path / "a.mp4").exists()


def test_save_mp4_with_ffmpeg(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    frames = torch.randint(0, 256, (5, 3, 15, 33), dtype=torch.uint8)  # odd sizes are padded
    assert save_mp4(tmp_path / "a.mp4", frames, fps=20, scale=2) is True
    assert (tmp_path / "a.mp4").stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError):
        resolve_device("tpu-ish")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA"):
            resolve_device("cuda")


@pytest.fixture(scope="module")
def multi_run(setup):
    ckpt, DR, truths, root = setup
    out = root / "multi"
    summary = predict_test_split(ckpt, DR, out, seed=3, device="cpu", progress=False,
                               write_frames=False, samples=4, noise_scale=1.0)
    return out, summary


def _sample_rollouts(setup, n: int) -> list[torch.Tensor]:
    """The n rollouts of sequence 0 that --samples n draws, regenerated one by one with their seeds."""
    ckpt, DR, _, _ = setup
    from posevae.data.lab import load_test_sequences
    from posevae.model.checkpoint import load_checkpoint
    from posevae.model.rollout import generate

    checkpoint = load_checkpoint(ckpt)
    model = model_from_checkpoint(checkpoint, ckpt, torch.device("cpu"))
    seq = load_test_sequences(DR, H, W)[0]
    first, poses = seq.first_frame[None].float() / 255, seq.labels[None].float() / 255
    return [to_uint8(generate(model, first, poses, noise_scale=1.0, generator=torch.Generator().manual_seed(
        3 + 0 + k * SEED_STRIDE))[0]) for k in range(n)]


def test_samples_are_distinct_and_best_of_n_is_at_least_their_mean(setup, multi_run):
    _, _, truths, _ = setup
    out, summary = multi_run
    multi = summary["multi_sample"]
    assert multi["samples"] == 4
    rollouts = _sample_rollouts(setup, 4)
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.equal(rollouts[a][1:], rollouts[b][1:])
    truth = torch.from_numpy(truths["0"])
    ssims = [float(ssim(r[1:].float() / 255, truth[1:].float() / 255).mean()) for r in rollouts]
    psnrs = [float(psnr(r[1:].float() / 255, truth[1:].float() / 255).mean()) for r in rollouts]
    entry = multi["sequences"]["0"]
    # the batched rollouts are the ones drawn alone with each sample's seed (up to float rounding)
    assert entry["mean_of_n"]["ssim"] == pytest.approx(np.mean(ssims), abs=1e-4)
    assert entry["mean_of_n"]["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-3)
    assert entry["best_of_n"]["sample"] == int(np.argmax(ssims))
    assert entry["best_of_n"]["ssim"] == pytest.approx(max(ssims), abs=1e-4)
    assert entry["best_of_n"]["ssim"] >= entry["mean_of_n"]["ssim"]
    assert entry["best_psnr_of_n"]["psnr"] == pytest.approx(max(psnrs), abs=1e-3)
    assert entry["best_psnr_of_n"]["psnr"] >= entry["mean_of_n"]["psnr"]
    assert entry["best_psnr_of_n"]["psnr"] >= entry["best_of_n"]["psnr"]
    # sample 0 is what the submission holds, and what a single run with the same seed writes
    assert entry["mean_of_n"]["psnr"] != pytest.approx(summary["sequences"]["0"]["psnr"])
    rows = _read_submission(out / "submission.csv")[1][:, 1:].reshape(N_SEQ, N_FRAMES, 3, H, W)
    np.testing.assert_array_equal(rows[0], rollouts[0].numpy())
    single = _run(setup, "single_n1", seed=3, noise_scale=1.0)
    assert (single / "submission.csv").read_bytes() == (out / "submission.csv").read_bytes()


def test_samples_report_the_deterministic_rollout_and_the_posterior_bound(setup, multi_run):
    out, summary = multi_run
    mean_run = predict_test_split(setup[0], setup[1], setup[3] / "zmean", seed=3, device="cpu",
                                progress=False, write_frames=False, z_mode="mean")
    multi = summary["multi_sample"]
    for name in ("0", "1"):
        assert multi["sequences"][name]["deterministic"]["psnr"] == pytest.approx(
            mean_run["sequences"][name]["psnr"], abs=1e-5)
        sequence = multi["sequences"][name]
        assert sequence["posterior"]["psnr"] != sequence["deterministic"]["psnr"]
    for kind in ("mean_of_n", "best_of_n", "deterministic", "posterior"):
        for metric in ("psnr", "psnr_pose", "psnr_box"):
            assert multi["mean"][kind][metric] == pytest.approx(
                np.mean([multi["sequences"][n][kind][metric] for n in ("0", "1")]))
    assert multi["sequences"]["0"]["deterministic"]["psnr_pose"] == pytest.approx(
        mean_run["sequences"]["0"]["psnr_pose"], abs=1e-5)
    lines = (out / "samples.csv").read_text().splitlines()
    assert lines[0].split(",") == SAMPLE_COLUMNS
    assert len(lines) == 1 + N_SEQ * (N_FRAMES - 1)
    seq0 = np.array([[float(v) for v in line.split(",")[2:]] for line in lines[1:N_FRAMES]])
    assert seq0[:, 0].mean() == pytest.approx(multi["sequences"]["0"]["mean_of_n"]["psnr"], abs=1e-5)
    seq1 = {c: [float(line.split(",")[j]) for line in lines[N_FRAMES:]]
            for j, c in enumerate(SAMPLE_COLUMNS) if j >= 2}
    assert math.isnan(seq1["psnr_pose_mean_of_n"][EMPTY_LABEL[1] - 1])  # frame 2's label is empty
    assert np.nanmean(seq1["psnr_pose_best_of_n"]) == pytest.approx(
        multi["sequences"]["1"]["best_of_n"]["psnr_pose"], abs=1e-5)
    # truth | 4 samples, upscaled less than 8x to stay narrow
    with Image.open(out / "samples_seq0.gif") as im:
        width = 5 * W + 4 * 2
        scale = min(8, predict_module.SAMPLES_GIF_WIDTH // width)
        assert scale < 8 and im.size == (width * scale, H * scale) and im.n_frames == N_FRAMES


def test_samples_need_sampling(setup, tmp_path):
    ckpt, DR, _, _ = setup
    with pytest.raises(UserError, match="--z_mode sample"):
        predict_test_split(ckpt, DR, tmp_path / "o", samples=3, z_mode="mean", progress=False)
    with pytest.raises(UserError, match="--samples must be >= 1"):
        predict_test_split(ckpt, DR, tmp_path / "o", samples=0, progress=False)
    assert not (tmp_path / "o").exists()
    # without ground truth the samples are drawn but not scored: tests/test_no_ground_truth.py
