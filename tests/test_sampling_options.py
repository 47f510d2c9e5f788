"""The command line's shared parts: the sampling options of ``posevae test`` and ``posevae transfer`` (one
set, one check, one meaning of --num_frames), option choices derived from the config's Literal types, the
``--preset`` help read from the presets themselves, and the one-line note on a submission.csv that is not
the course's shape."""

from __future__ import annotations

import argparse
import json
import re
import typing
from pathlib import Path

import pytest
import torch

from posevae.cli.main import main as cli_main
from posevae.cli.main import make_parser
from posevae.cli.options import SECTIONS
from posevae.config import (
    KL_ANNEAL_TYPES,
    MODEL_PRESETS,
    PRIORS,
    VARIANTS,
    KLAnnealType,
    Prior,
    RunConfig,
    Variant,
)
from posevae.data.skeleton import SkeletonName
from posevae.errors import UserError
from posevae.evaluation.predict import check_sampling_options, predict_test_split
from posevae.evaluation.submission import course_shape_note
from posevae.evaluation.transfer import transfer
from posevae.model.checkpoint import Checkpoint, save_checkpoint
from posevae.model.rollout import Z_MODES
from posevae.model.vae import PoseVAE
from tests.conftest import tiny_model_config
from tests.synthetic import make_lab_dataset

SAMPLING = ("noise_scale", "seed", "z_mode", "num_frames")  # the options test and transfer share
TEST_LEN = 5


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A random-weight tiny checkpoint, a lab dataset with 2 test sequences of 5 frames, and test sequence 0's
    first frame and pose folder as the inputs of a transfer."""
    root = tmp_path_factory.mktemp("sampling")
    torch.manual_seed(0)
    config = RunConfig(model=tiny_model_config(16, 32))
    ckpt = root / "tiny.safetensors"
    save_checkpoint(ckpt, Checkpoint(config, PoseVAE(config.model).state_dict()))
    data = make_lab_dataset(root / "data", n_train=2, n_val=2, n_test=2, test_len=TEST_LEN)
    return {"ckpt": ckpt, "data": data, "first": data / "test" / "test_img" / "0" / "0.png",
            "poses": data / "test" / "test_label" / "0"}


def _test_argv(inputs: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["test", "--ckpt", str(inputs["ckpt"]), "--DR", str(inputs["data"]), "--out", str(out), "--device",
            "cpu", "--quiet", *extra]


def _transfer_argv(inputs: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["transfer", "--ckpt", str(inputs["ckpt"]), "--first-frame", str(inputs["first"]), "--poses",
            str(inputs["poses"]), "--out", str(out), "--device", "cpu", "--quiet", *extra]


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in make_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _sampling_actions(name: str) -> dict[str, tuple]:
    return {a.dest: (tuple(a.option_strings), a.default, a.type,
                     None if a.choices is None else tuple(a.choices), a.metavar, a.help)
            for a in _subparser(name)._actions if a.dest in SAMPLING}


# ------------------------------------------------------------------------- one set of sampling options


def test_test_and_transfer_have_the_same_sampling_options():
    test, transfer_ = _sampling_actions("test"), _sampling_actions("transfer")
    assert set(test) == set(SAMPLING)
    assert test == transfer_  # names, defaults, types, choices and help: one definition
    num_frames_help = test["num_frames"][-1]
    assert "first frame included" in num_frames_help and ">= 2" in num_frames_help


@pytest.mark.parametrize("option", [("--num_frames", "1"), ("--num_frames", "0"), ("--num-frames", "-3"),
                                    ("--noise_scale", "-1"), ("--noise_scale", "nan"),
                                    ("--noise-scale", "inf")],
                         ids=lambda o: " ".join(o))
def test_test_and_transfer_refuse_the_same_options_with_the_same_line(inputs, tmp_path, capsys, option):
    errors = {}
    for command, argv in (("test", _test_argv), ("transfer", _transfer_argv)):
        out = tmp_path / command
        assert cli_main(argv(inputs, out, *option)) == 2
        err = capsys.readouterr().err
        assert err.startswith("posevae: error: ") and err.count("\n") == 1, err
        assert not out.exists()  # refused before anything is written
        errors[command] = err
    assert errors["test"] == errors["transfer"]
    if "num" in option[0]:  # what --num_frames counts, and the fix
        assert f"--num_frames must be an integer >= 2, got {option[1]}" in errors["test"]
        assert "first frame included" in errors["test"] and "one frame predicts nothing" in errors["test"]


def test_test_and_transfer_accept_the_same_options(inputs, tmp_path, capsys):
    options = ["--num_frames", "2", "--noise_scale", "0", "--z_mode", "mean", "--seed", "7"]
    assert cli_main(_test_argv(inputs, tmp_path / "test", *options)) == 0
    assert cli_main(_transfer_argv(inputs, tmp_path / "transfer", *options)) == 0
    capsys.readouterr()
    test_summary = json.loads((tmp_path / "test" / "summary.json").read_text())
    transfer_summary = json.loads((tmp_path / "transfer" / "summary.json").read_text())
    for summary in (test_summary, transfer_summary):
        assert (summary["noise_scale"], summary["z_mode"], summary["seed"]) == (0.0, "mean", 7)
    assert transfer_summary["frames"] == 2
    assert sorted(p.name for p in (tmp_path / "test" / "seq0" / "frames").iterdir()) == ["0.png", "1.png"]


@pytest.mark.parametrize("options", [{"z_mode": "median"}, {"num_frames": 1}, {"num_frames": True},
                                     {"num_frames": 2.5}, {"noise_scale": float("nan")},
                                     {"noise_scale": -0.5}],
                         ids=str)
def test_the_library_functions_share_the_one_check(inputs, tmp_path, options):
    """predict_test_split and transfer refuse a bad option with check_sampling_options' own message."""
    kw = {"z_mode": "sample", "noise_scale": None, "num_frames": None, **options}
    with pytest.raises(UserError) as expected:
        check_sampling_options(**kw)
    with pytest.raises(UserError) as by_test:
        predict_test_split(inputs["ckpt"], inputs["data"], tmp_path / "t", device="cpu", progress=False,
                           **options)
    with pytest.raises(UserError) as by_transfer:
        transfer(inputs["ckpt"], inputs["first"], inputs["poses"], tmp_path / "x", device="cpu",
                 progress=False, **options)
    assert str(by_test.value) == str(by_transfer.value) == str(expected.value)
    assert "\n" not in str(expected.value)
    assert not (tmp_path / "t").exists() and not (tmp_path / "x").exists()


def test_num_frames_beyond_the_poses_is_one_message_for_both(inputs, tmp_path, capsys):
    for argv in (_test_argv, _transfer_argv):
        assert cli_main(argv(inputs, tmp_path / "out", "--num_frames", str(TEST_LEN + 1))) == 2
        err = capsys.readouterr().err
        want = (f"has {TEST_LEN} poses in {inputs['poses']}, but --num_frames asks for {TEST_LEN + 1}: lower "
                f"--num_frames to at most {TEST_LEN} or add pose images.")
        assert want in err, err


# ------------------------------------------------------------------------- choices from the Literal types


def _literal_of(command: str, action: argparse.Action) -> tuple | None:
    """What ``action``'s choices must be: the names of its Literal type (the config field's, or the one the
    code checks against); None for choices that are not a Literal's (model presets)."""
    if "." in action.dest:  # a config option: section.field
        section, name = action.dest.split(".", 1)
        hint = typing.get_type_hints(SECTIONS[section])[name]
        assert typing.get_origin(hint) is typing.Literal, action.dest
        return typing.get_args(hint)
    known = {"prior": typing.get_args(Prior), "z_mode": Z_MODES, "skeleton": typing.get_args(SkeletonName)}
    if action.dest in known:
        return known[action.dest]
    assert action.dest == "preset", f"{command} {action.option_strings}: choices of unknown origin"
    return None


def _walk(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{prefix} {name}".strip())
        elif action.choices is not None:
            yield prefix, action


def test_every_choice_list_is_its_literal():
    assert typing.get_args(KLAnnealType) == KL_ANNEAL_TYPES
    assert (typing.get_args(Prior), typing.get_args(Variant)) == (PRIORS, VARIANTS)
    seen = set()
    for command, action in _walk(make_parser()):
        expected = _literal_of(command, action)
        if expected is None:  # a model preset
            assert set(action.choices) <= set(MODEL_PRESETS), (command, action.choices)
            continue
        assert tuple(action.choices) == expected, (command, action.option_strings)
        seen.add(action.dest)
    assert {"train.kl_anneal_type", "train.step", "train.precision", "train.lr_schedule", "model.prior",
            "prior", "z_mode"} <= seen
    # the lists that were written beside their Literal are now the Literal's (or the checked tuple) itself
    assert next(a for a in _subparser("demo")._actions if a.dest == "prior").choices is PRIORS
    for command in ("test", "transfer"):
        assert next(a for a in _subparser(command)._actions if a.dest == "z_mode").choices is Z_MODES


# ------------------------------------------------------------------------- --preset help


@pytest.mark.parametrize("name", list(MODEL_PRESETS))
def test_preset_help_states_what_each_preset_sets(name):
    help_text = next(a for a in _subparser("train")._actions if a.dest == "preset").help
    match = re.search(rf"(?<![-\w]){name} \(([^()]*)\)", help_text)
    assert match, (name, help_text)
    described = match.group(1)
    settings = MODEL_PRESETS[name]
    assert set(re.findall(r"--(?:no-)?(\w+)", described)) == set(settings), described
    for field, value in settings.items():
        assert (f"--{field}" if value is True else f"--no-{field}" if value is False
                else f"--{field} {value}") in described
    # a warp is mentioned only where the preset warps (sharp does not: docs/quality.md)
    assert ("warp" in described) == bool(settings.get("warp")), described


def test_no_help_bakes_in_measured_times(capsys):
    for argv in (["demo", "--help"], ["train", "--help"], ["test", "--help"], ["transfer", "--help"]):
        with pytest.raises(SystemExit):
            make_parser().parse_args(argv)
        text = capsys.readouterr().out
        assert not re.search(r"~\s*\d+\s*min|\d+(\.\d+)?x slower|\d+ minutes", text), (argv, text)


# ------------------------------------------------------------------------- the submission's shape


def test_the_shape_note_is_one_line_for_a_short_run_and_none_for_the_course_shape():
    note = course_shape_note(2, 100)
    assert note is not None and "\n" not in note
    assert note.startswith("submission.csv holds 2 sequences of 100 frames")
    assert "not the course's 5 x 630" in note and "not a course submission" in note
    assert course_shape_note(5, 630) is None
    assert course_shape_note(5, [630] * 5, (32, 64)) is None
    assert course_shape_note(5, 630, (16, 32)) is not None  # another frame size
    assert course_shape_note(4, 630) is not None
    assert "629 to 630 frames" in course_shape_note(5, [630, 630, 629, 630, 630])


def test_posevae_test_prints_the_note_once_and_records_it(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli_main(_test_argv(inputs, out, "--num_frames", "3")) == 0
    printed = capsys.readouterr().out.splitlines()
    notes = [line for line in printed if "not a course submission" in line]
    assert len(notes) == 1, printed
    assert notes[0].startswith("Note: submission.csv holds 2 sequences of 3 frames of 16x32 pixels")
    summary = json.loads((out / "summary.json").read_text())
    assert notes[0] == f"Note: {summary['submission_note']}"
