"""The ``posevae transfer`` and ``posevae data poses`` subcommands (wired into :mod:`posevae.cli.main`).

    posevae transfer --ckpt CKPT --first-frame IMG --poses DIR|GIF|MP4 --out OUT [--num_frames N] ...
                     [--poses-from-video | --poses-are-images] [--no-normalise]
    posevae data poses --out DIR [--clip NAME] [--frames N] [--height H --width W] [--seed S] [--speed X]
"""

from __future__ import annotations

import argparse


def _transfer(args: argparse.Namespace) -> None:
    from posevae.evaluation.transfer import transfer

    summary = transfer(args.ckpt, args.first_frame, args.poses, args.out, noise_scale=args.noise_scale,
                       seed=args.seed, device=args.device, z_mode=args.z_mode, num_frames=args.num_frames,
                       progress=not args.quiet, poses_from_video=args.poses_from_video,
                       normalise=args.normalise)
    mp4 = f", {args.out}/transfer.mp4" if summary["outputs"]["mp4"] else ""
    extracted = summary.get("pose_extraction")
    if extracted:
        how = "normalised to the first frame" if extracted["normalised"] else "not normalised"
        print(f"Extracted the poses of {args.poses}: a person in {100 * extracted['detection_rate']:.1f}% of "
              f"its {extracted['frames']} frames ({how}).")
        mp4 += f", {args.out}/source_pose_frame.gif (source | pose | frame)"
    print(f"Wrote {summary['frames']} frames driven by the poses of {args.poses}: {args.out}/frames/, "
          f"{args.out}/transfer.gif{mp4}, {args.out}/pose_and_frame.gif, {args.out}/summary.json.")


def _data_poses(args: argparse.Namespace) -> None:
    from posevae.data.demo.poses import read_poses_marker, render_clip_poses

    root = render_clip_poses(args.out, clip=args.clip, n_frames=args.frames, height=args.height,
                             width=args.width, seed=args.seed, speed=args.speed, progress=not args.quiet)
    seen = (read_poses_marker(root) or {}).get("seen_in_demo_training")
    note = f" (a clip the demo training data {'plays' if seen else 'never plays'})"
    print(f"Wrote {args.frames} pose images of clip {args.clip}{note} to {root}/ (reference frames in "
          f"{root}/frames/); drive a model with: posevae transfer --poses {root} ...")


def add_transfer_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``transfer`` to the ``posevae`` subcommands."""
    p = subparsers.add_parser(
        "transfer", help="drive a trained model from one first frame with a pose sequence from elsewhere",
        description="Motion transfer: generate one frame per pose, starting from --first-frame, and write "
                    "OUT/frames/<k>.png, OUT/transfer.gif (and .mp4 with imageio-ffmpeg), "
                    "OUT/pose_and_frame.gif and OUT/summary.json.")
    p.add_argument("--ckpt", "--ckpt_path", required=True,
                   help="checkpoint (.safetensors), run folder, or a course-template .ckpt")
    p.add_argument("--first-frame", "--first_frame", dest="first_frame", required=True, metavar="IMAGE",
                   help="the frame the video starts from (any image; resized to the model's frame size)")
    p.add_argument("--poses", required=True, metavar="DIR|GIF|MP4",
                   help="pose images: a folder of PNGs named by frame number (`posevae data poses` makes "
                        "one), a GIF, or a video of pose images (needs imageio-ffmpeg); or a video of a "
                        "person, whose poses are extracted (needs posevae[video]); pose k drives frame k")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--poses-from-video", "--poses_from_video", dest="poses_from_video",
                      action="store_const", const=True, default=None,
                      help="--poses shows a person (a video or a folder of frames): extract the poses. "
                           "Default for a video: decided by its first frame (mostly black = pose images, "
                           "else a person)")
    kind.add_argument("--poses-are-images", "--poses_are_images", dest="poses_from_video",
                      action="store_const", const=False, help="--poses holds drawn pose images, whatever it "
                                                              "looks like")
    p.add_argument("--no-normalise", "--no-normalize", dest="normalise", action="store_false",
                   help="extracted poses: keep the source's person-centred crop instead of scaling and "
                        "moving the skeleton onto the first frame's person (Everybody Dance Now's "
                        "normalisation)")
    p.add_argument("--out", default="transfer_out", help="output folder (default: transfer_out)")
    p.add_argument("--noise_scale", "--noise-scale", type=float, default=None,
                   help="latent noise scale (default: the checkpoint's; 1.0 for a course-template .ckpt)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--z_mode", "--z-mode", choices=["sample", "mean"], default="sample",
                   help="sample z from the prior, or use its mean (deterministic)")
    p.add_argument("--num_frames", "--num-frames", type=int, default=None,
                   help="generate only the first N frames (default: one per pose)")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_transfer)


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
