"""``posevae data``: datasets in the lab layout.

    posevae data demo --out DIR [--seed S] [--n_train N] [--height H --width W]
    posevae data poses --out DIR [--clip NAME] [--frames N] [--height H --width W] [--seed S] [--speed X]
    posevae data from-video INPUT --out DIR [--size 32x64] [--fps F] [--val-len N] [--test-len N]
                            [--n-test K] [--cut end|start|SECONDS] [--skeleton demo|openpose] [--preset fast]
                            [--cache-dir D] [--quiet]
"""

from __future__ import annotations

import argparse
import re

from posevae.config import MODEL_PRESETS, SKELETON_NAMES
from posevae.data.video.pipeline import VideoOptions


def add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data`` and its subcommands (demo, poses, from-video) to the ``posevae`` subcommands."""
    p = subparsers.add_parser("data", help="dataset tools")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    add_data_demo_command(data_sub)
    add_data_poses_command(data_sub)
    add_data_from_video_command(data_sub)


def add_data_demo_command(data_subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the ``posevae data`` subcommands."""
    q = data_subparsers.add_parser("demo", help="render the demo dataset (real motion capture, lab layout)")
    q.add_argument("--out", required=True, help="folder to write")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--n_train", "--n-train", type=int, default=12000, help="training frames")
    q.add_argument("--height", type=int, default=64)
    q.add_argument("--width", type=int, default=128)
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=_data_demo)


def _data_demo(args: argparse.Namespace) -> None:
    from posevae.data.demo.dataset import render_demo_dataset

    root = render_demo_dataset(args.out, seed=args.seed, n_train=args.n_train, height=args.height,
                               width=args.width, progress=not args.quiet)
    print(f"Wrote the demo dataset (lab layout) to {root}.")


def _data_poses(args: argparse.Namespace) -> None:
    from posevae.data.demo.poses import read_poses_marker, render_clip_poses

    root = render_clip_poses(args.out, clip=args.clip, n_frames=args.frames, height=args.height,
                             width=args.width, seed=args.seed, speed=args.speed, progress=not args.quiet)
    seen = (read_poses_marker(root) or {}).get("seen_in_demo_training")
    note = f" (a clip the demo training data {'plays' if seen else 'never plays'})"
    print(f"Wrote {args.frames} pose images of clip {args.clip}{note} to {root}/ (reference frames in "
          f"{root}/frames/); drive a model with: posevae transfer --poses {root} ...")


def add_data_poses_command(data_subparsers: argparse._SubParsersAction) -> None:
    """Add ``poses`` to the ``posevae data`` subcommands."""
    from posevae.data.demo.poses import DEFAULT_CLIP, DEFAULT_FRAMES

    q = data_subparsers.add_parser(
        "poses", help="render the pose images of one motion clip (a --poses source for posevae transfer)",
        description="Render one DeepMimic clip with the demo renderer: DIR/<k>.png pose images (what "
                    "`posevae transfer --poses DIR` reads), DIR/frames/<k>.png reference frames, "
                    "DIR/keypoints.npy and DIR/poses.json. crawl, roll, getup_facedown and getup_faceup "
                    "are never played in the demo training data.")
    q.add_argument("--out", required=True, help="folder to write")
    q.add_argument("--clip", default=DEFAULT_CLIP,
                   help=f"motion clip (default: {DEFAULT_CLIP}, never in the demo training data; an unknown "
                        "name lists the valid ones)")
    q.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                   help=f"frames to render, at 30 fps (default: {DEFAULT_FRAMES})")
    q.add_argument("--height", type=int, default=64)
    q.add_argument("--width", type=int, default=128)
    q.add_argument("--seed", type=int, default=0, help="start time of looping clips, heading, camera angle")
    q.add_argument("--speed", type=float, default=1.0, help="playback speed of the clip (default: 1.0)")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=_data_poses)


# ------------------------------------------------------------------------------------------ from-video


def parse_size(text: str) -> tuple[int, int]:
    """'32x64' -> (32, 64): frame height x width."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX*,]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 32x64, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def parse_cut(text: str) -> str | float:
    if text in ("end", "start"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected end, start or a time in seconds, got {text!r}") from None


def parse_cutoff(text: str) -> float | None:
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a frequency in Hz or off, got {text!r}") from None


def _from_video(args: argparse.Namespace) -> None:
    from posevae.data.video import from_video

    height, width = args.size
    options = VideoOptions(
        height=height,
        width=width,
        fps=args.fps,
        folder_fps=args.folder_fps,
        val_len=args.val_len,
        test_len=args.test_len,
        n_test=args.n_test,
        clip_len=args.clip_len,
        cut=args.cut,
        max_gap=args.max_gap,
        smooth=args.smooth,
        keypoint_min_cutoff=args.keypoint_min_cutoff,
        keypoint_beta=args.keypoint_beta,
        preset=args.preset,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        skeleton=args.skeleton,
    )
    s = from_video(args.input, args.out, options, progress=not args.quiet)
    n, found = s["frames"], s["frames_with_person"]
    speed = "from the cache" if s["from_cache"] else f"{s['extraction_fps']} frames/s"
    print(
        f"Detection rate: a person in {found} of {n} frames ({100 * s['detection_rate']:.1f}%), "
        f"{len(s['segments'])} segment(s); poses extracted {speed}."
    )
    split = s["split_frames"]
    print(
        f"Wrote {args.out}: train {split['train']} frames, val {split['val']}, test {len(split['test'])} x "
        f"{options.test_len} ({height}x{width}); summary in {args.out}/from_video.json. Train with:\n"
        f"  posevae train --DR {args.out} --preset {options.preset} --frame_H {height} --frame_W {width} "
        f"--train_vi_len {options.clip_len} --val_vi_len {options.val_len} --save_root runs/myvideo"
    )


def add_data_from_video_command(data_subparsers: argparse._SubParsersAction) -> None:
    """Add ``from-video`` to the ``posevae data`` subcommands."""
    d = VideoOptions()
    p = data_subparsers.add_parser(
        "from-video",
        help="a dataset in the lab layout from your own video of one person (needs posevae[video])",
        description="Extract poses with MediaPipe from a video (mp4, mov, avi, webm, mkv) or a folder of "
        "frames, crop a steady box around the person and write the lab layout to DIR: train, val and test "
        "from separate time ranges, labels drawn as the demo's skeleton or OpenPose's (--skeleton), "
        "keypoints (.npy, keypoints.json) "
        "and DIR/from_video.json with the detection rate.",
    )
    p.add_argument("input", metavar="INPUT", help="a video file or a folder of frames (0.png, 1.png, ...)")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="folder to write (replaced if written by this command)"
    )
    p.add_argument(
        "--size",
        type=parse_size,
        default=(d.height, d.width),
        metavar="HxW",
        help=f"frame height x width (default: {d.height}x{d.width}, the lab's); any size the preset divides",
    )
    p.add_argument(
        "--fps", type=float, default=None, help="resample to this frame rate (default: the source's)"
    )
    p.add_argument(
        "--folder-fps",
        "--folder_fps",
        type=float,
        default=d.folder_fps,
        help=f"frame rate of a folder of frames (default: {d.folder_fps:g})",
    )
    _add_split_options(p, d)
    p.add_argument(
        "--max-gap",
        "--max_gap",
        type=float,
        default=d.max_gap,
        metavar="SECONDS",
        help=f"gaps without a person up to this long are interpolated, longer ones cut "
        f"(default: {d.max_gap})",
    )
    p.add_argument(
        "--smooth",
        type=float,
        default=d.smooth,
        metavar="SECONDS",
        help=f"how much the crop box is smoothed over time (default: {d.smooth})",
    )
    p.add_argument(
        "--keypoint-min-cutoff",
        "--keypoint_min_cutoff",
        type=parse_cutoff,
        default=d.keypoint_min_cutoff,
        metavar="HZ|off",
        help="One Euro smoothing of the joints over time: cutoff frequency at rest, lower is steadier "
        f"(default: {'off' if d.keypoint_min_cutoff is None else f'{d.keypoint_min_cutoff:g}'})",
    )
    p.add_argument(
        "--keypoint-beta",
        "--keypoint_beta",
        type=float,
        default=d.keypoint_beta,
        metavar="B",
        help="how fast that cutoff rises with a joint's speed, higher lags less in fast moves "
        f"(default: {d.keypoint_beta:g})",
    )
    p.add_argument(
        "--skeleton",
        choices=SKELETON_NAMES,
        default=d.skeleton,
        help="how the pose labels are drawn: demo (the demo data's skeleton) or openpose (OpenPose's "
        f"COCO-18 body) (default: {d.skeleton})",
    )
    p.add_argument(
        "--preset",
        choices=sorted(MODEL_PRESETS),
        default=d.preset,
        help=f"model preset the data is for: its downsample factor must divide the size "
        f"(default: {d.preset})",
    )
    p.add_argument(
        "--cache-dir",
        "--cache_dir",
        default=None,
        help="where decoded frames and poses are cached (default: ~/.cache/posevae/video)",
    )
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_from_video)


def _add_split_options(p: argparse.ArgumentParser, d: VideoOptions) -> None:
    """Where and how long val, the tests and the training clips are."""
    p.add_argument(
        "--val-len",
        "--val_len",
        type=int,
        default=d.val_len,
        help=f"frames of the validation video (default: {d.val_len})",
    )
    p.add_argument(
        "--test-len",
        "--test_len",
        type=int,
        default=d.test_len,
        help=f"frames of each test sequence (default: {d.test_len})",
    )
    p.add_argument(
        "--n-test", "--n_test", type=int, default=d.n_test, help=f"test sequences (default: {d.n_test})"
    )
    p.add_argument(
        "--clip-len",
        "--train_vi_len",
        dest="clip_len",
        type=int,
        default=d.clip_len,
        help=f"training clip length: training stretches are whole clips (default: {d.clip_len})",
    )
    p.add_argument(
        "--cut",
        type=parse_cut,
        default=d.cut,
        metavar="end|start|SECONDS",
        help="where val and the tests lie, back to back: at the end (default), at the start, or from "
        "this second on; training takes the rest",
    )
