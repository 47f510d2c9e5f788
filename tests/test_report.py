"""`posevae compare` and `posevae report` end to end on tiny runs: the table against the runs' metrics.csv,
every figure a real image, resume, named configurations, and the HTML page in headless Chromium."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import html
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import posevae.training.loop as train_module
from posevae.cli.options import build_config
from posevae.cli.report import add_report_commands
from posevae.config import DataConfig, RunConfig, TrainConfig, config_diff
from posevae.errors import UserError
from posevae.jobs.compare import compare, parse_configuration
from posevae.metrics import psnr
from posevae.report.figures import FIGURES
from posevae.report.runs import STRATEGY_STYLES, RunData, assign_styles
from posevae.run_folder import VAL_FRAMES, read_val_frames
from posevae.training.loop import train
from tests.conftest import ctrl_c_at_epoch, tiny_model_config
from tests.synthetic import make_lab_dataset

STRATEGIES = ["None", "Monotonic", "Cyclical"]
TINY = ["--preset", "tiny", "--frame_H", "16", "--frame_W", "32", "--train_vi_len", "6", "--val_vi_len", "10",
        "--batch_size", "2", "--num_epoch", "2", "--kl_anneal_cycle", "1", "--precision", "fp32",
        "--seed", "3"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="posevae")
    add_report_commands(p.add_subparsers(dest="command", required=True))
    return p


def cli(*argv: str) -> None:
    args = parser().parse_args(list(argv))
    args.func(args)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def column(path: Path, name: str) -> list[float]:
    return [float(row[name]) for row in read_csv(path)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_lab_dataset(tmp_path_factory.mktemp("data"), n_train=48, n_val=10)


@pytest.fixture(scope="module")
def compared(dataset, tmp_path_factory) -> Path:
    """`posevae compare` of None / Monotonic / Cyclical, 2 epochs each, through the command line."""
    out = tmp_path_factory.mktemp("compare")
    cli("compare", "--DR", str(dataset), "--out", str(out), "--quiet", *TINY)
    return out


def test_compare_trains_one_run_per_strategy_and_the_table_matches_their_metrics(compared):
    table = read_csv(compared / "table.csv")
    assert [r["run"] for r in table] == STRATEGIES
    configs = {}
    for row in table:
        run = compared / "runs" / row["run"]
        val = column(run / "metrics.csv", "val_psnr")
        best = int(np.argmax(val))
        assert row["kl_anneal_type"] == row["run"]
        assert int(row["epochs"]) == len(val) == 2
        assert float(row["best_val_psnr"]) == pytest.approx(val[best], abs=1e-4)
        assert int(row["best_epoch"]) == best + 1  # 1-based
        assert float(row["last_val_psnr"]) == pytest.approx(val[-1], abs=1e-4)
        seconds = column(run / "metrics.csv", "seconds")
        assert float(row["train_seconds"]) == pytest.approx(sum(seconds), rel=1e-4)
        test = json.loads((run / "test" / "summary.json").read_text())  # the dataset has test ground truth
        assert float(row["test_psnr"]) == pytest.approx(test["mean_psnr"], abs=1e-4)
        assert float(row["test_ssim"]) == pytest.approx(test["mean_ssim"], abs=1e-5)
        assert float(row["test_psnr_pose"]) == pytest.approx(test["mean_psnr_pose"], abs=1e-4)
        assert float(row["test_psnr_box"]) == pytest.approx(test["mean_psnr_box"], abs=1e-4)
        configs[row["run"]] = json.loads((run / "config.json").read_text())
        # the GIF's frames are the rollout validation scored at the best epoch: val_psnr_per_frame.csv's
        frames = read_val_frames(run / VAL_FRAMES)
        assert frames.epoch == best and frames.pred.shape == (10, 3, 16, 32)
        assert column(run / "val_psnr_per_frame.csv", "psnr") == pytest.approx(
            psnr(torch.from_numpy(frames.pred[1:]) / 255, torch.from_numpy(frames.true[1:]) / 255).tolist(),
            abs=1e-2)
        for key in ("val_psnr_pose", "val_psnr_box"):  # the person metrics of the best epoch
            assert float(row[key]) == pytest.approx(column(run / "metrics.csv", key)[best], abs=1e-4), key
    # same seed and budget: the runs differ in their strategy (and folder) only
    assert config_diff(configs["None"], configs["Cyclical"]) == [
        "train.kl_anneal_type: 'None' != 'Cyclical'",
        f"train.save_root: '{compared / 'runs' / 'None'}' != '{compared / 'runs' / 'Cyclical'}'"]
    betas = {name: column(compared / "runs" / name / "metrics.csv", "beta") for name in STRATEGIES}
    assert betas == {"None": [1.0, 1.0], "Monotonic": [0.0, 0.5], "Cyclical": [0.0, 1.0]}

    md = (compared / "table.md").read_text().splitlines()
    assert md[0].startswith("| run | KL annealing |") and "best val PSNR (dB)" in md[0]
    assert "| val pose / box PSNR (dB) |" in md[0] and "| test pose / box PSNR (dB) |" in md[0]
    body = [line for line in md[2:] if line.startswith("|")]
    assert [line.split("|")[1].strip() for line in body] == STRATEGIES
    for line, row in zip(body, table, strict=True):
        assert f"| {float(row['best_val_psnr']):.2f} |" in line
        assert f"| {float(row['test_psnr']):.2f} |" in line
        assert f"| {float(row['val_psnr_pose']):.2f} / {float(row['val_psnr_box']):.2f} |" in line
        assert f"| {float(row['test_psnr_pose']):.2f} / {float(row['test_psnr_box']):.2f} |" in line


def assert_image(path: Path, min_std: float = 5.0) -> Image.Image:
    assert path.is_file(), path
    with Image.open(path) as im:
        im.verify()  # a valid file of its format
    im = Image.open(path)
    assert im.width > 0 and im.height > 0
    pixels = np.asarray(im.convert("L"), dtype=np.float32)
    assert pixels.std() > min_std, f"{path} looks blank (pixel std {pixels.std():.2f})"
    return im


def test_every_figure_is_a_valid_non_blank_png_and_svg(compared):
    for name, _, _ in FIGURES:
        png = compared / "figures" / f"{name}.png"
        im = assert_image(png)
        assert im.size == (1050, 630)
        # not one flat colour with a frame either: lines, text and legend cover a share of the plot
        assert (np.asarray(im.convert("L")) < 200).mean() > 0.01, f"{png} has almost nothing drawn"
        svg = ET.parse(compared / "figures" / f"{name}.svg").getroot()
        assert svg.tag.endswith("svg") and svg.get("width") and svg.get("viewBox")
        assert len(svg.findall(".//{http://www.w3.org/2000/svg}path")) > 20  # axes, lines, text as paths
    for gif in (compared / "media").glob("*.gif"):
        assert assert_image(gif, min_std=1.0).n_frames > 1
    curves = sorted((compared / "media").glob("*_psnr_curve.png"))
    assert len(curves) == 3 * (1 + 2)  # per run: the validation video and the 2 test sequences
    for curve in curves:
        assert_image(curve)


def test_compare_again_skips_finished_runs_and_refuses_another_config(compared, dataset):
    metrics = {p: p.stat().st_mtime_ns for p in (compared / "runs").glob("*/metrics.csv")}
    frames = {p: p.stat().st_mtime_ns for p in (compared / "runs").glob(f"*/{VAL_FRAMES}")}
    args = parser().parse_args(["compare", "--DR", str(dataset), "--out", str(compared), *TINY])
    base = build_config(args, preset=args.preset)
    compare(base, compared, STRATEGIES, progress=False)
    assert {p: p.stat().st_mtime_ns for p in metrics} == metrics and len(metrics) == 3  # not retrained
    assert {p: p.stat().st_mtime_ns for p in frames} == frames and len(frames) == 3
    assert not list((compared / "runs").glob("*/val_compare*"))  # the report writes nothing into a run folder
    other = dataclasses.replace(base, train=dataclasses.replace(base.train, lr=5e-4))
    with pytest.raises(UserError, match=r"finished run of another config \(train.lr: 0.001 != 0.0005"):
        compare(other, compared, STRATEGIES, progress=False)


def test_compare_resumes_an_interrupted_run(dataset, tmp_path, monkeypatch):
    data = DataConfig(DR=str(dataset), train_vi_len=6, val_vi_len=10)
    train = TrainConfig(batch_size=2, num_epoch=2, kl_anneal_type="None", precision="fp32", seed=3)
    base = RunConfig(model=tiny_model_config(), data=data, train=train)
    real_tfr = ctrl_c_at_epoch(monkeypatch, 1)
    with pytest.raises(UserError, match="Interrupted during epoch 2"):
        compare(base, tmp_path, ["None"], progress=False, gifs=False)
    assert len(read_csv(tmp_path / "runs" / "None" / "metrics.csv")) == 1
    monkeypatch.setattr(train_module, "teacher_forcing_ratio", real_tfr)
    index = compare(base, tmp_path, ["None"], progress=False, gifs=False)
    assert [r["epoch"] for r in read_csv(tmp_path / "runs" / "None" / "metrics.csv")] == ["0", "1"]
    assert index == tmp_path / "index.html" and "Test sequence 0" in index.read_text()


def test_report_redraws_from_run_folders_with_the_given_names(compared, tmp_path):
    out = tmp_path / "report"
    cli("report", str(compared / "runs" / "None"), str(compared / "runs" / "Cyclical"), "--out", str(out),
        "--names", "no annealing", "cyclical, 1 cycle", "--no-gifs")
    assert [r["run"] for r in read_csv(out / "table.csv")] == ["no annealing", "cyclical, 1 cycle"]
    for name, _, _ in FIGURES:
        assert_image(out / "figures" / f"{name}.png")
    page = (out / "index.html").read_text()
    assert "no annealing" in page and "cyclical, 1 cycle" in page
    assert 'src="media/cyclical_1_cycle_test_seq0.gif"' in page  # the run's test GIFs, copied beside the page
    with pytest.raises(UserError, match="2 names for 1 runs"):
        cli("report", str(compared / "runs" / "None"), "--out", str(out), "--names", "a", "b")
    with pytest.raises(UserError, match="not a run folder"):
        cli("report", str(tmp_path), "--out", str(out))


def test_training_writes_the_validation_frames_of_the_best_epoch(dataset, tmp_path, monkeypatch):
    """At a new best epoch training writes RUN/val_best_frames.npz: the rollout validation scored (not a
    second one), the true frames and the labels of the validation video; a later, worse epoch leaves it."""
    from posevae.data.lab import load_val_video

    real, scored = train_module.evaluate_video, []

    def scripted(*args, **kwargs):  # epoch 2 (0-based 1) is the best
        val = real(*args, **kwargs)
        scored.append((val["pred_frames"].clone(), val["per_frame"]["psnr"]))
        val["val_psnr"] = [20.0, 25.0, 22.0][len(scored) - 1]
        return val

    monkeypatch.setattr(train_module, "evaluate_video", scripted)
    data = DataConfig(DR=str(dataset), train_vi_len=6, val_vi_len=10)
    run = tmp_path / "run"
    train(RunConfig(model=tiny_model_config(), data=data,
                    train=TrainConfig(save_root=str(run), batch_size=2, num_epoch=3, kl_anneal_type="None",
                                      precision="fp32", seed=3)), progress=False)
    frames = read_val_frames(run / VAL_FRAMES)
    assert frames.epoch == 1
    assert not torch.equal(scored[1][0], scored[2][0])  # the epochs' rollouts differ: the file has the best's
    np.testing.assert_array_equal(frames.pred, scored[1][0].numpy())
    assert column(run / "val_psnr_per_frame.csv", "psnr") == pytest.approx(scored[1][1], abs=1e-5)
    video = load_val_video(dataset, 16, 32, 10, progress=False)
    np.testing.assert_array_equal(frames.true, video.frames.numpy())
    np.testing.assert_array_equal(frames.labels, video.labels.numpy())
    np.testing.assert_array_equal(frames.pred[0], frames.true[0])  # frame 0 is the given one
    assert not list(run.glob(".*.tmp"))  # written atomically


# The report in a fresh interpreter: which posevae modules it imports, and the files it writes.
REPORT_ALONE = """
import json, sys
from pathlib import Path
from posevae.report.write import write_report
write_report([Path(sys.argv[1])], Path(sys.argv[2]), names=["run"])
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("posevae.model", "posevae.data",
                                                                "posevae.device")))))
"""


def tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_the_report_draws_the_validation_gif_and_crops_from_the_run_folder_alone(compared, tmp_path):
    """No model, no dataset, no device: the GIF and the crops come from RUN/val_best_frames.npz, and the run
    folder is left as it was."""
    run = tmp_path / "run"
    shutil.copytree(compared / "runs" / "None", run)
    config = json.loads((run / "config.json").read_text())
    config["data"]["DR"] = str(tmp_path / "no-dataset-here")  # the report must not need it
    (run / "config.json").write_text(json.dumps(config))
    before = tree(run)
    done = subprocess.run([sys.executable, "-c", REPORT_ALONE, str(run), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []
    assert tree(run) == before
    frames = read_val_frames(run / VAL_FRAMES)
    gif = assert_image(tmp_path / "out" / "media" / "run_val_compare.gif", min_std=1.0)
    assert gif.size == ((2 * 32 + 2) * 4, 16 * 4)  # predicted | true, scaled to at least 64 pixels high
    gif.seek(0)
    left = np.asarray(gif.convert("RGB"))[::4, :32 * 4:4].transpose(2, 0, 1)  # frame 0 is the given one
    assert np.abs(left.astype(int) - frames.true[0]).mean() < 8  # a GIF's 256 colours
    page = (tmp_path / "out" / "index.html").read_text()
    assert f"Validation video, best epoch ({frames.epoch + 1})" in page
    assert_image(tmp_path / "out" / "figures" / "fig10_person_crops.png")


def test_a_run_folder_without_validation_frames_gets_a_one_line_note(compared, tmp_path):
    """A run trained before training wrote val_best_frames.npz: the page says so in one line where the GIF
    would be, the crops figure says no run has the frames, and the rest of the report is drawn."""
    run = tmp_path / "old"
    shutil.copytree(compared / "runs" / "None", run)
    (run / VAL_FRAMES).unlink()
    out = tmp_path / "report"
    cli("report", str(run), "--out", str(out))
    page = (out / "index.html").read_text()
    notes = re.findall(r'<p class="note">(No validation GIF: .*?)</p>', page)
    assert len(notes) == 1 and "\n" not in notes[0]
    assert "val_best_frames.npz does not exist" in notes[0] and "train the run again" in notes[0]
    assert not (out / "media" / "old_val_compare.gif").exists()
    assert len(list((out / "media").glob("old_test_seq*.gif"))) == 2  # the test GIFs are still there
    for name, _, _ in FIGURES:
        assert (out / "figures" / f"{name}.png").is_file()
    (run / VAL_FRAMES).write_bytes(b"not an npz")  # a broken file: a note as well, never a traceback
    cli("report", str(run), "--out", str(out))
    assert "Cannot read" in (out / "index.html").read_text()


def test_report_of_a_run_from_before_the_person_metrics(tmp_path):
    """metrics.csv, val_psnr_per_frame.csv and test/summary.json without the pose / box columns: the table
    says '–' there and the pose figures say that no run has them."""
    run = tmp_path / "old"
    (run / "test").mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch,beta,tfr,val_psnr,val_mse,val_kl,val_loss,seconds\n"
                                     "0,0,1,20.5,0.01,1.5,0.01,3\n1,1,1,21.5,0.009,1.2,0.01,3\n")
    (run / "val_psnr_per_frame.csv").write_text("frame,psnr\n1,22.0\n2,21.0\n")
    (run / "test" / "summary.json").write_text(json.dumps({"mean_psnr": 19.0, "mean_ssim": 0.7,
                                                           "mean_baseline_psnr": 18.0, "sequences": {}}))
    out = tmp_path / "report"
    cli("report", str(run), "--out", str(out), "--no-gifs")
    row = read_csv(out / "table.csv")[0]
    assert row["best_val_psnr"] == "21.5" and row["test_psnr"] == "19"
    assert row["val_psnr_pose"] == row["val_psnr_box"] == row["test_psnr_pose"] == row["test_psnr_box"] == ""
    assert "| – / – |" in (out / "table.md").read_text()
    for name in ("fig8_val_psnr_pose", "fig9_per_frame_psnr_pose"):
        assert (out / "figures" / f"{name}.png").is_file()


def test_named_configurations():
    assert parse_configuration("None") == ("None", {"kl_anneal_type": "None"})
    assert parse_configuration("Cyclical:kl_anneal_cycle=2,kl_anneal_ratio=0.25") == (
        "Cyclical", {"kl_anneal_cycle": 2, "kl_anneal_ratio": 0.25, "kl_anneal_type": "Cyclical"})
    entry = "cyc140:kl_anneal_type=Cyclical,num_epoch=140,milestones=2/5,channels_last=no"
    assert parse_configuration(entry) == ("cyc140", {"kl_anneal_type": "Cyclical", "num_epoch": 140,
                                                     "milestones": (2, 5), "channels_last": False})
    for bad, message in [("x:foo=1", "not field=value"), ("x:lr=abc", "lr='abc' is not a valid float"),
                         ("x:kl_anneal_type=Linear", "is not a valid Cyclical"),
                         ("a/b", "must be a folder name"), ("x:save_root=y", "chosen by compare")]:
        with pytest.raises(UserError, match=re.escape(message)):
            parse_configuration(bad)


def test_each_strategy_keeps_its_style_and_other_runs_get_their_own():
    def run(name: str, strategy: str) -> RunData:
        return RunData(name, Path(name), {"train": {"kl_anneal_type": strategy}}, {"epoch": np.zeros(1)},
                       None)

    a = [run("Cyclical", "Cyclical"), run("None", "None")]
    b = [run("None", "None"), run("Monotonic", "Monotonic"), run("Cyclical", "Cyclical")]
    c = [run("70 epochs", "Cyclical"), run("140 epochs", "Cyclical")]
    for runs in (a, b, c):
        assign_styles(runs)
    assert a[0].style == b[2].style == c[0].style == STRATEGY_STYLES["Cyclical"]
    assert a[1].style == b[0].style == STRATEGY_STYLES["None"]
    assert c[1].style.colour not in {s.colour for s in STRATEGY_STYLES.values()}


def test_help_of_both_commands(capsys):
    for command, option in (("compare", "--strategies"), ("report", "--names")):
        with pytest.raises(SystemExit) as exit_info:
            parser().parse_args([command, "--help"])
        assert exit_info.value.code == 0
        assert option in capsys.readouterr().out


# ---------------------------------------------------------------------------------- the page in Chromium

# Appended to a copy of index.html: once every image has loaded (or failed), write down what the page saw.
PROBE = """<script>
window.addEventListener('load', function () {
  var images = Array.from(document.images).map(function (im) {
    return {src: im.getAttribute('src'), url: im.currentSrc || im.src, width: im.naturalWidth,
            complete: im.complete};
  });
  var resources = performance.getEntriesByType('resource').map(function (e) { return e.name; });
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({images: images, resources: resources});
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def load_in_chromium(page: Path, work: Path) -> tuple[dict, list[str]]:
    """Open ``page`` (a copy with PROBE) in headless Chromium with name resolution off; return what the
    probe saw and the URLs of every network request the page made (from Chromium's net log)."""
    net_log = work / f"{page.stem}.netlog.json"
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={work / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
           f"--log-net-log={net_log}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found, f"Chromium did not run the page's probe (exit {done.returncode}): {done.stderr[-2000:]}"
    probe = json.loads(html.unescape(found.group(1)))
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    # Requests of the page carry its origin ("null" for file://); Chromium's own background requests
    # (component updates, accounts) carry "not an origin" and are none of the page's doing. file:// loads
    # do not go through the network stack at all, so any request here left the local disk.
    requests = [e["params"]["url"] for e in log["events"]
                if e["type"] == start_job and "url" in e.get("params", {})
                and e["params"].get("initiator") != "not an origin"]
    return probe, requests


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v for k, v in attrs if k in ("src", "href", "srcset", "poster", "data") and v]


@pytest.mark.skipif(chromium() is None,
                    reason="Chromium is not installed (Debian: apt-get install chromium); CI installs it")
def test_index_html_loads_every_image_from_disk_in_headless_chromium(compared, tmp_path):
    index = compared / "index.html"
    text = index.read_text()
    refs = _References()
    refs.feed(text)
    assert "script" not in refs.tags and "link" not in refs.tags  # no script, no external stylesheet or font
    assert not re.search(r"url\(|@import", text)  # nothing fetched from CSS either
    for ref in refs.refs:  # every reference a relative path to a file beside the page
        assert not re.match(r"^[a-z][a-z0-9+.-]*:|^//|^/", ref, re.IGNORECASE), ref
        assert (compared / ref).is_file(), ref

    page = compared / "_probe_index.html"
    page.write_text(text.replace("</body>", PROBE + "</body>"))
    probe, requests = load_in_chromium(page, tmp_path)
    images = probe["images"]
    srcs = {im["src"] for im in images}
    assert srcs == {r for r in refs.refs if r.endswith((".png", ".gif"))}
    assert len(srcs) == len(FIGURES) + 3 * (1 + 2) * 2  # figures; per run 3 GIFs, each with its curve
    for im in images:
        assert im["complete"] and im["width"] > 0, f"{im['src']} did not load"
        assert im["url"].startswith("file://"), im
    assert all(r.startswith(("file:", "data:")) for r in probe["resources"]), probe["resources"]
    assert requests == [], f"the page made network requests: {requests}"

    # The SVGs, which the page links to, load as images too.
    svgs = "".join(f'<img src="figures/{name}.svg">' for name, _, _ in FIGURES)
    page = compared / "_probe_svgs.html"
    page.write_text(f"<!DOCTYPE html><html><body>{svgs}{PROBE}</body></html>")
    probe, _ = load_in_chromium(page, tmp_path)
    assert [im["width"] > 0 for im in probe["images"]] == [True] * len(FIGURES)

    # The check catches what it should: a page with a remote image shows up as a network request.
    page = compared / "_probe_remote.html"
    page.write_text('<!DOCTYPE html><html><body><img '
                    f'src="http://example.invalid/a.png">{PROBE}</body></html>')
    probe, requests = load_in_chromium(page, tmp_path)
    assert probe["images"][0]["width"] == 0
    assert requests == ["http://example.invalid/a.png"]
