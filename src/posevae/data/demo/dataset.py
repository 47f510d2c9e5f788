"""``posevae data demo``: render a dataset of real human motion in the course's lab layout, on CPUs.

The motion is motion capture (pybullet's DeepMimic clips: dances, spins, walks, kicks, cartwheels ...)
mixed into long videos (:mod:`.motion`), played on pybullet's humanoid dressed in coloured clothes
and filmed by a smoothed camera that keeps the dancer large and in frame (:mod:`.camera`). Frames
come from pybullet's tiny CPU renderer (:mod:`.scene`); labels are OpenPose-style skeletons of the
very keypoints projected with the same matrices (:mod:`.skeleton`). Same seed, same bytes.

Layout (the lab's ``LAB4_Dataset``)::

    DIR/train/train_img/{k}.png  DIR/train/train_label/{k}.png   k = 0..n_train-1, one long video
    DIR/val/val_img/{k}.png      DIR/val/val_label/{k}.png       k = 0..n_val-1, one video
    DIR/test/test_img/{i}/0.png  (first frame only)              i = 0..n_test-1
    DIR/test/test_label/{i}/{k}.png                              k = 0..test_len-1
    DIR/test/test_gt/{i}/{k}.png (ground truth; frame 0 is test_img/{i}/0.png)
    DIR/train/train_keypoints.npy, DIR/val/val_keypoints.npy     float32 (N, J, 2) pixel (x, y)
    DIR/test/test_keypoints/{i}.npy                              float32 (test_len, J, 2)
    DIR/keypoints.json   joint names, limb pairs and colours
    DIR/demo.json        the parameters; written last, so its presence marks a finished dataset

The dataset is rendered into a hidden sibling folder and moved into place at the end.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from posevae.data.demo import camera as demo_camera
from posevae.data.demo import humanoid
from posevae.data.demo import motion as demo_motion
from posevae.data.png import write_png
from posevae.errors import UserError
from posevae.files import atomic_folder

if TYPE_CHECKING:  # pybullet is imported only where a scene is rendered
    from posevae.data.demo.scene import Scene

DEMO_FORMAT = "posevae-demo"
DEMO_VERSION = 1
MARKER = "demo.json"
CHUNK = 400  # frames a work item
_POOL_MIN_FRAMES = 400  # below this, render in this process (even forked workers cost a little to start)


# ----------------------------------------------------------------------------------------------------------
# public helpers


def read_demo_marker(root: str | Path) -> dict | None:
    """The parameters of a finished demo dataset at ``root`` (its ``demo.json``), or None if there is none."""
    try:
        with open(Path(root) / MARKER) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != DEMO_FORMAT:
        return None
    return data


def render_demo_dataset(
    out: str | Path,
    *,
    seed: int = 0,
    n_train: int = 12000,
    n_val: int = 630,
    n_test: int = 5,
    test_len: int = 630,
    height: int = 64,
    width: int = 128,
    progress: bool = True,
) -> Path:
    """Render the demo dataset into ``out`` and return its path (see the module docstring for the layout).

    ``out`` may be missing, an empty folder, or an earlier demo dataset (replaced); anything else is
    refused with :class:`UserError`. Deterministic for ``seed``.
    """
    return _render(
        out,
        seed=seed,
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
        test_len=test_len,
        height=height,
        width=width,
        progress=progress,
    )


# ----------------------------------------------------------------------------------------------------------
# videos


@dataclass
class _Video:
    key: str  # "train", "val", "test/3"
    n_frames: int
    img_paths: list  # per frame: relative paths the frame is written to
    label_paths: list
    kp_path: str
    rows: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))  # pose rows, set by the motion plan
    segments: list = field(default_factory=list)  # the clips the rows play
    azimuth_offset: float = 0.0


def _videos(n_train: int, n_val: int, n_test: int, test_len: int) -> list[_Video]:
    vids = [
        _Video(
            "train",
            n_train,
            [[f"train/train_img/{k}.png"] for k in range(n_train)],
            [f"train/train_label/{k}.png" for k in range(n_train)],
            "train/train_keypoints.npy",
        ),
        _Video(
            "val",
            n_val,
            [[f"val/val_img/{k}.png"] for k in range(n_val)],
            [f"val/val_label/{k}.png" for k in range(n_val)],
            "val/val_keypoints.npy",
        ),
    ]
    for i in range(n_test):
        imgs = [[f"test/test_gt/{i}/{k}.png"] for k in range(test_len)]
        imgs[0].append(f"test/test_img/{i}/0.png")
        vids.append(
            _Video(
                f"test/{i}",
                test_len,
                imgs,
                [f"test/test_label/{i}/{k}.png" for k in range(test_len)],
                f"test/test_keypoints/{i}.npy",
            )
        )
    return vids


def _seed_code(key: str) -> int:
    if key == "train":
        return 0
    if key == "val":
        return 1
    return 100 + int(key.split("/")[1])


def _plan_motion(video: _Video, seed: int) -> None:
    rng = np.random.default_rng([seed, _seed_code(video.key)])
    first = None
    if video.key.startswith("test/"):  # every test video opens with one of the dances
        first = demo_motion.DANCE_CLIPS[int(video.key.split("/")[1]) % len(demo_motion.DANCE_CLIPS)]
    video.rows, video.segments = demo_motion.make_video(rng, video.n_frames, first_clip=first)
    video.azimuth_offset = float(rng.uniform(-0.35, 0.35))


# ----------------------------------------------------------------------------------------------------------
# work done in worker processes (or here): forward kinematics, then rendering


_STATE: dict = {}


def _init_worker() -> None:
    # a forked worker must not share the parent's pybullet connection: start from a clean state
    _STATE.clear()


def _pool(n: int) -> ProcessPoolExecutor:
    """Worker processes. On Linux they are forked: no re-import of the caller's ``__main__`` (so a script
    without an ``if __name__ == "__main__"`` guard works) and a fast start; the workers only use numpy,
    pybullet, zlib and PIL. Elsewhere they are spawned. A worker that dies makes the render fail with
    BrokenProcessPool rather than hang."""
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context(method), initializer=_init_worker)


def _scene() -> Scene:
    from posevae.data.demo.scene import Scene

    if "scene" not in _STATE:
        _STATE["scene"] = Scene()
    return _STATE["scene"]


def _work_fk(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scene = _scene()
    kps, ext = [], []
    for row in rows:
        scene.set_pose(row)
        k, e = scene.keypoints()
        kps.append(k)
        ext.append(e)
    return np.asarray(kps), np.asarray(ext)


def _work_render(task: dict) -> int:
    from posevae.data.demo.scene import Background, compose, light_direction

    scene = _scene()
    w, h = task["width"], task["height"]
    bg_key = ("bg", w, h)
    if bg_key not in _STATE:
        _STATE[bg_key] = Background(w, h, demo_camera.FOV_Y)
    background = _STATE[bg_key]
    root = Path(task["root"])
    proj = task["proj"]
    proj_list = demo_camera.gl_list(proj)
    for i in range(len(task["rows"])):
        view, eye = task["views"][i], task["eyes"][i]
        if task["hide_person"]:
            person, mask = None, None
        else:
            scene.set_pose(task["rows"][i])
            person, mask = scene.render_person(
                demo_camera.gl_list(view), proj_list, w, h, light_direction(eye, task["targets"][i])
            )
        img = background.paint(view, eye, task["shadow_xz"][i], float(task["shadow_h"][i]))
        if person is not None and mask is not None:
            img = compose(person, mask, img)
        for rel in task["img_paths"][i]:
            write_png(root / rel, img)
        label = np.asarray(humanoid.draw_skeleton(task["kp2d"][i], w, h))
        write_png(root / task["label_paths"][i], label)
    return len(task["rows"])


def _plan_render(
    video: _Video,
    fk: list[tuple[np.ndarray, np.ndarray]],
    root: Path,
    width: int,
    height: int,
    hide_person: bool,
) -> list[dict]:
    """The camera path of ``video`` from its forward kinematics ``fk`` (the :func:`_work_fk` results of its
    chunks, in order); writes its 2D keypoints to ``root / video.kp_path`` and returns its render tasks (one
    per chunk, for :func:`_work_render`)."""
    kp3 = np.concatenate([r[0] for r in fk])
    ext = np.concatenate([r[1] for r in fk])
    pts = np.concatenate([kp3, ext], axis=1)
    facing = np.unwrap(demo_motion.yaw_of(video.rows[:, 3:7]))
    cam = demo_camera.plan_camera(
        pts, video.rows[:, :3], facing, aspect=width / height, azimuth_offset=video.azimuth_offset
    )
    kp2d = demo_camera.project_video(kp3, cam.views, cam.proj, width, height).astype(np.float32)
    np.save(root / video.kp_path, kp2d)
    feet = [
        humanoid.JOINT_NAMES.index(n) for n in ("right_ankle", "left_ankle", "right_toe", "left_toe")
    ]
    shadow_h = np.maximum(kp3[:, feet, 1].min(axis=1) - 0.04, 0.0)
    pelvis = humanoid.JOINT_NAMES.index("pelvis")
    shadow_xz = kp3[:, pelvis][:, [0, 2]]
    return [
        {
            "root": str(root),
            "width": width,
            "height": height,
            "proj": cam.proj,
            "rows": video.rows[a:b],
            "views": cam.views[a:b],
            "eyes": cam.eye[a:b],
            "targets": cam.target[a:b],
            "kp2d": kp2d[a:b].astype(np.float64),
            "shadow_xz": shadow_xz[a:b],
            "shadow_h": shadow_h[a:b],
            "img_paths": video.img_paths[a:b],
            "label_paths": video.label_paths[a:b],
            "hide_person": hide_person,
        }
        for a, b in _chunks(video.n_frames)
    ]


# ----------------------------------------------------------------------------------------------------------
# the target folder


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; choose another --out for the demo dataset.")
    if out.is_dir() and any(out.iterdir()) and read_demo_marker(out) is None:
        raise UserError(
            f"{out} exists, is not empty and is not a finished posevae demo dataset (no {MARKER}); "
            "refusing to overwrite it. Choose another --out, or remove the folder first."
        )


def _validate(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise UserError(f"demo dataset: {name} must be an integer, got {value!r}.")
    mins = {"seed": 0, "n_train": 16, "n_val": 2, "n_test": 1, "test_len": 2, "height": 16, "width": 16}
    for name, low in mins.items():
        if sizes[name] < low:
            raise UserError(f"demo dataset: {name} must be at least {low}, got {sizes[name]}.")


def _check_assets() -> None:
    """pybullet, its motion clips and its humanoid must be installed; say how to fix it otherwise."""
    from posevae.data.native_output import quiet_c_output

    try:
        with quiet_c_output():  # pybullet prints its build time on import
            import pybullet  # noqa: F401
            import pybullet_data
    except ImportError as exc:
        raise UserError(
            f"the demo dataset is rendered with pybullet, which is not installed ({exc}); "
            "run `pip install pybullet`."
        ) from exc
    data = Path(pybullet_data.getDataPath())
    missing = (
        [str(data / "humanoid/humanoid.urdf")] if not (data / "humanoid/humanoid.urdf").is_file() else []
    )
    missing += [
        str(demo_motion.motions_dir() / f"humanoid3d_{c}.txt")
        for c in demo_motion.CLIPS
        if not (demo_motion.motions_dir() / f"humanoid3d_{c}.txt").is_file()
    ]
    if missing:
        raise UserError(
            f"pybullet's data files are missing: {', '.join(missing)}; reinstall pybullet "
            "(pip install --force-reinstall pybullet)."
        )


def _n_workers(total_frames: int, workers: int | None) -> int:
    if workers is not None:
        return max(1, int(workers))
    if total_frames < _POOL_MIN_FRAMES:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def _chunks(n: int, size: int = CHUNK) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n, size)]


# ----------------------------------------------------------------------------------------------------------


def _render(
    out: str | Path,
    *,
    seed: int,
    n_train: int,
    n_val: int,
    n_test: int,
    test_len: int,
    height: int,
    width: int,
    progress: bool,
    workers: int | None = None,
    hide_person: bool = False,
) -> Path:
    """:func:`render_demo_dataset` with two knobs for tests: ``workers`` (processes; None = automatic) and
    ``hide_person`` (paint the same videos without the person, to get background-only frames)."""
    from tqdm.auto import tqdm

    _validate(
        seed=seed, n_train=n_train, n_val=n_val, n_test=n_test, test_len=test_len, height=height, width=width
    )
    out = Path(out).expanduser().absolute()
    _check_target(out)
    _check_assets()
    out.parent.mkdir(parents=True, exist_ok=True)

    videos = _videos(n_train, n_val, n_test, test_len)
    for v in videos:
        _plan_motion(v, seed)
    total = sum(v.n_frames for v in videos)
    n_proc = _n_workers(total, workers)

    pool = None
    with atomic_folder(out) as tmp, _shut_down_on_error(lambda: pool):
        for d in ("train/train_img", "train/train_label", "val/val_img", "val/val_label"):
            (tmp / d).mkdir(parents=True)
        for i in range(n_test):
            for d in ("test_img", "test_label", "test_gt"):
                (tmp / "test" / d / str(i)).mkdir(parents=True)
        (tmp / "test" / "test_keypoints").mkdir(parents=True)

        imap: Callable[..., Iterator[Any]]
        if n_proc > 1:
            pool = _pool(n_proc)
            imap = pool.map
        else:
            imap = map

        # 1. forward kinematics: 3D keypoints of every frame
        fk_jobs = [(v, a, b) for v in videos for a, b in _chunks(v.n_frames)]
        fk = list(imap(_work_fk, [v.rows[a:b] for v, a, b in fk_jobs]))
        per_video: dict[str, list] = {v.key: [] for v in videos}
        for (v, _, _), res in zip(fk_jobs, fk, strict=True):
            per_video[v.key].append(res)

        # 2. camera paths and 2D keypoints
        tasks = []
        for v in videos:
            tasks += _plan_render(v, per_video[v.key], tmp, width, height, hide_person)

        # 3. render and write
        with tqdm(total=total, desc="rendering demo dataset", unit="frame", disable=not progress) as bar:
            if pool is not None:
                futures = [pool.submit(_work_render, t) for t in tasks]
                for fut in as_completed(futures):
                    bar.update(fut.result())
                pool.shutdown()
                pool = None
            else:
                for t in tasks:
                    bar.update(_work_render(t))

        with open(tmp / "keypoints.json", "w") as f:
            json.dump(humanoid.keypoint_spec("demo"), f, indent=1)  # records "skeleton": "demo"
        marker = {
            "format": DEMO_FORMAT,
            "version": DEMO_VERSION,
            "seed": int(seed),
            "n_train": n_train,
            "n_val": n_val,
            "n_test": n_test,
            "test_len": test_len,
            "height": height,
            "width": width,
            "fps": demo_motion.FPS,
            "source": "DeepMimic motion capture clips shipped with pybullet (pybullet_data/data/motions), "
            "rendered with pybullet's ER_TINY_RENDERER",
            "joints": len(humanoid.JOINT_NAMES),
            "clips": {v.key: [s.as_dict() for s in v.segments] for v in videos},
        }
        with open(tmp / MARKER, "w") as f:
            json.dump(marker, f, indent=1)
        _check_target(out)
    return out


@contextlib.contextmanager
def _shut_down_on_error(pool: Callable[[], ProcessPoolExecutor | None]) -> Iterator[None]:
    """On an error in the block, shut down the process pool ``pool()`` (if any), waiting for its workers:
    they write into the folder that is removed next."""
    try:
        yield
    except BaseException:
        executor = pool()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        raise


__all__ = ["DEMO_FORMAT", "DEMO_VERSION", "read_demo_marker", "render_demo_dataset", "write_preview"]


def write_preview(
    root: str | Path,
    out_png: str | Path,
    *,
    split: str = "train",
    n: int = 8,
    start: int = 0,
    step: int = 15,
    scale: int = 4,
) -> Path:
    """A contact sheet of ``n`` frames of a rendered dataset: frames on top, their labels below, then the
    same two rows downscaled to half size (the model's 32x64 by default); upscaled (nearest) so that every
    row shows at ``scale`` times the full frame size."""
    from PIL import Image

    root = Path(root)
    if split == "test":
        img_dir, lab_dir = root / "test/test_gt/0", root / "test/test_label/0"
    else:
        img_dir, lab_dir = root / split / f"{split}_img", root / split / f"{split}_label"
    idx = [start + k * step for k in range(n)]
    frames = [Image.open(img_dir / f"{k}.png").convert("RGB") for k in idx]
    labels = [Image.open(lab_dir / f"{k}.png").convert("RGB") for k in idx]
    w, h = frames[0].size

    def row(ims: list[Image.Image], size: tuple[int, int], up: int) -> Image.Image:
        strip = Image.new("RGB", (size[0] * len(ims), size[1]))
        for j, im in enumerate(ims):
            resized = im.resize(size, Image.Resampling.BILINEAR) if im.size != size else im
            strip.paste(resized, (j * size[0], 0))
        return strip.resize((strip.width * up, strip.height * up), Image.Resampling.NEAREST)

    small = (w // 2, h // 2)
    rows = [
        row(frames, (w, h), scale),
        row(labels, (w, h), scale),
        row(frames, small, 2 * scale),
        row(labels, small, 2 * scale),
    ]
    gap = scale
    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows) + 3 * gap), (255, 255, 255))
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height + gap
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png)
    return out_png
