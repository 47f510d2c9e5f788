"""``posevae test`` and ``posevae transfer``: roll a trained model out from first frames and poses.

Both take the same sampling options (:func:`add_sampling_options`), checked by one function
(:func:`posevae.evaluation.predict.check_sampling_options`).

    posevae test --ckpt CKPT --DR DATA --out OUT [--samples N] [--num_frames N] [--noise_scale S] ...
    posevae transfer --ckpt CKPT --first-frame IMG --poses DIR|GIF|MP4 --out OUT [--num_frames N] ...
                     [--poses-from-video | --poses-are-images] [--no-normalise] [--skeleton demo|openpose]
"""

from __future__ import annotations

import argparse

from posevae.config import SKELETON_NAMES
from posevae.evaluation.predict import MIN_FRAMES
from posevae.evaluation.submission import COURSE_FRAMES
from posevae.model.rollout import Z_MODES
from posevae.model.template import TEMPLATE_NOISE_SCALE


def _db(value: float | None) -> str:
    """A PSNR for a printed summary; n/a when there is none (a person metric without any pose label)."""
    return "n/a" if value is None else f"{value:.2f} dB"


def _test(args: argparse.Namespace) -> None:
    from posevae.evaluation.predict import predict_test_split

    summary = predict_test_split(args.ckpt, args.DR, args.out, noise_scale=args.noise_scale, seed=args.seed,
                       device=args.device, z_mode=args.z_mode, progress=not args.quiet,
                       num_frames=args.num_frames, samples=args.samples,
                       allow_unequal_lengths=args.allow_unequal_lengths)
    n_seq = len(summary["sequences"])
    print(f"Wrote {args.out}/submission.csv, GIFs and frames for {n_seq} test sequences.")
    if summary["submission_note"]:
        print(f"Note: {summary['submission_note']}")
    if summary["unequal_lengths"]:
        print(f"Warning: {summary['unequal_lengths']}; submission.csv was written anyway "
              "(--allow_unequal_lengths): its ids shift after that sequence.")
    if summary["scores_skipped"]:
        scored = summary["scored_sequences"]
        print(f"Scores {'skipped' if not scored else f'for {scored} of {n_seq} sequences only'}: "
              f"{summary['scores_skipped']} (the course hands out no test ground truth; submission.csv is "
              "scored on its leaderboard).")
    if summary["mean_psnr"] is not None:
        print(f"Test PSNR {summary['mean_psnr']:.2f} dB, SSIM {summary['mean_ssim']:.4f} "
              f"(repeat-the-first-frame baseline {summary['mean_baseline_psnr']:.2f} dB); per frame in "
              f"{args.out}/scores.csv.")
        print(f"Over the person: pose-region PSNR {_db(summary['mean_psnr_pose'])}, person-box PSNR "
              f"{_db(summary['mean_psnr_box'])}.")
    multi = summary.get("multi_sample")
    if multi and multi["mean"]:
        print(f"{multi['samples']} samples per sequence (per frame in {args.out}/samples.csv):")
        for kind, label in (("mean_of_n", "mean of N"), ("best_of_n", "best of N (by SSIM)"),
                            ("deterministic", "deterministic (prior mean)"),
                            ("posterior", "posterior bound")):
            m = multi["mean"][kind]
            print(f"  {label:<28} PSNR {m['psnr']:6.2f} dB  SSIM {m['ssim']:.4f}  "
                  f"pose {_db(m['psnr_pose'])}  box {_db(m['psnr_box'])}")
    elif multi:
        print(f"{multi['samples']} samples per sequence drawn: {args.out}/samples_seq*.gif (not scored).")


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    """The sampling options of ``posevae test`` and ``posevae transfer``: one set, one meaning each, checked
    by :func:`posevae.evaluation.predict.check_sampling_options`."""
    p.add_argument("--noise_scale", "--noise-scale", type=float, default=None,
                   help="latent noise scale s: z ~ N(0, s^2 I), or N(mu_p, (s sigma_p)^2) with a learned "
                        f"prior (default: the checkpoint's; {TEMPLATE_NOISE_SCALE} for a course-template "
                        ".ckpt)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the latents (test: a sequence's is seed + its number): the same seed gives "
                        "the same frames on the same device (default: 1)")
    p.add_argument("--z_mode", "--z-mode", choices=Z_MODES, default=Z_MODES[0],
                   help="sample z from the prior, or use its mean (deterministic) (default: sample)")
    p.add_argument("--num_frames", "--num-frames", type=int, default=None, metavar="N",
                   help=f"write only the first N frames, the given first frame included: N >= {MIN_FRAMES}, "
                        "as one frame predicts nothing (default: one frame per pose)")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto",
                   help="auto (CUDA when present), cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_test_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``test`` to the ``posevae`` subcommands."""
    p = subparsers.add_parser("test", help="generate the test sequences from a checkpoint; write frames, "
                                           "GIFs, CSV")
    p.add_argument("--ckpt", "--ckpt_path", required=True,
                   help="checkpoint (.safetensors), run folder, or a course-template .ckpt")
    p.add_argument("--DR", required=True, help="dataset root in the lab layout")
    p.add_argument("--out", default="test_out", help="output folder (default: test_out)")
    add_sampling_options(p)
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help="also draw N samples per sequence and score mean-of-N, best-of-N (by SSIM), the "
                        "deterministic rollout and the posterior bound (samples.csv) where there is ground "
                        "truth")
    p.add_argument("--allow_unequal_lengths", "--allow-unequal-lengths", action="store_true",
                   help="write submission.csv even when the test sequences differ in length (its ids then "
                        f"shift after the odd sequence; the course expects {COURSE_FRAMES} frames each)")
    _add_run_options(p)
    p.set_defaults(func=_test)


def _transfer(args: argparse.Namespace) -> None:
    from posevae.evaluation.transfer import transfer

    summary = transfer(args.ckpt, args.first_frame, args.poses, args.out, noise_scale=args.noise_scale,
                       seed=args.seed, device=args.device, z_mode=args.z_mode, num_frames=args.num_frames,
                       progress=not args.quiet, poses_from_video=args.poses_from_video,
                       normalise=args.normalise, skeleton=args.skeleton)
    mp4 = f", {args.out}/transfer.mp4" if summary["outputs"]["mp4"] else ""
    extracted = summary.get("pose_extraction")
    if extracted:
        how = "normalised to the first frame" if extracted["normalised"] else "not normalised"
        print(f"Extracted the poses of {args.poses}: a person in {100 * extracted['detection_rate']:.1f}% of "
              f"its {extracted['frames']} frames ({how}).")
        mp4 += f", {args.out}/source_pose_frame.gif (source | pose | frame)"
    print(f"Wrote {summary['frames']} frames driven by the poses of {args.poses}: {args.out}/frames/, "
          f"{args.out}/transfer.gif{mp4}, {args.out}/pose_and_frame.gif, {args.out}/summary.json.")


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
    p.add_argument("--skeleton", choices=SKELETON_NAMES, default=None,
                   help="extracted poses: draw them as the demo's skeleton or OpenPose's COCO-18 body "
                        "(default: as the checkpoint's training data, else demo)")
    p.add_argument("--out", default="transfer_out", help="output folder (default: transfer_out)")
    add_sampling_options(p)
    _add_run_options(p)
    p.set_defaults(func=_transfer)
