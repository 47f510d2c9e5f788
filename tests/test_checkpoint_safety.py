"""Safe to open: checkpoints are never unpickled, bad files are refused clearly, names never escape `out`."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import posevae.evaluation.predict as predict_module
from posevae.config import RunConfig
from posevae.data.lab import TestSequence
from posevae.errors import UserError
from posevae.evaluation.predict import predict_test_split
from posevae.jobs.compare import parse_configuration
from posevae.model.checkpoint import Checkpoint, load_checkpoint, load_lab_ckpt, save_checkpoint
from posevae.model.vae import PoseVAE
from tests.conftest import tiny_model_config
from tests.synthetic import make_lab_dataset


class _Evil:
    """Unpickling this would run os.system and create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def tiny_checkpoint(path: Path, **model) -> Path:
    cfg = RunConfig(model=tiny_model_config(**model))
    save_checkpoint(path, Checkpoint(cfg, PoseVAE(cfg.model).state_dict(), {"epoch": 0}))
    return path


def test_malicious_lab_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "payload": _Evil(marker)}, evil)
    plain = tmp_path / "plain.ckpt"
    evil_plain_pickle = tmp_path / "evil_plain.ckpt"  # a bare pickle, not torch's zip format
    evil_plain_pickle.write_bytes(pickle.dumps(_Evil(marker), protocol=2))
    for path in (evil, evil_plain_pickle):
        with pytest.raises(UserError, match="not a plain-weights checkpoint; refusing to unpickle") as err:
            load_lab_ckpt(path)
        assert path.name in str(err.value)
        assert not marker.exists()  # the payload never ran

    # the lab's real files (tensors in dicts) load fine
    torch.save({"state_dict": {"enc.weight": torch.ones(2, 3)}, "epoch": 7, "lr": 1e-3}, plain)
    tensors = load_lab_ckpt(plain)
    assert list(tensors) == ["state_dict/enc.weight"]
    assert torch.equal(tensors["state_dict/enc.weight"], torch.ones(2, 3))


@pytest.mark.parametrize("content", ["truncated", "random", "empty", "lab-ckpt-truncated"])
def test_lab_ckpt_damaged_files_are_user_errors(tmp_path, content):
    path = tmp_path / "model.ckpt"
    if content == "truncated":
        torch.save({"w": torch.zeros(100)}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif content == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    elif content == "empty":
        path.write_bytes(b"")
    else:
        torch.save({"w": torch.zeros(100)}, path)
        path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match="model.ckpt"):
        load_lab_ckpt(path)


def test_lab_ckpt_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_lab_ckpt(tmp_path / "nope.ckpt")


def test_posevae_checkpoints_are_safetensors_and_json_only(tmp_path):
    path = tiny_checkpoint(tmp_path / "c.safetensors")
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_len])  # the whole non-tensor part is JSON
    meta = header["__metadata__"]
    assert meta["format"] == "posevae-checkpoint"
    json.loads(meta["config"]), json.loads(meta["train_state"])
    assert b"\x80\x04" not in raw[:8 + header_len]  # no pickle protocol marker in the header


def test_truncated_safetensors_checkpoint(tmp_path):
    path = tiny_checkpoint(tmp_path / "cut.safetensors")
    for keep in (0.9, 0.5, 0.01):
        data = path.read_bytes()
        (tmp_path / "t.safetensors").write_bytes(data[: int(len(data) * keep)])
        with pytest.raises(UserError, match=r"t\.safetensors cannot be read .*truncated"):
            load_checkpoint(tmp_path / "t.safetensors")


def test_safetensors_without_posevae_metadata(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(UserError,
                       match="other.safetensors is a safetensors file but not a posevae checkpoint"):
        load_checkpoint(path)


def test_random_bytes_file(tmp_path):
    path = tmp_path / "noise.safetensors"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 10_000, dtype=np.uint8).tobytes())
    with pytest.raises(UserError, match="noise.safetensors cannot be read"):
        load_checkpoint(path)


def test_a_pickle_renamed_to_safetensors_is_not_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    torch.save(_Evil(marker), path)
    with pytest.raises(UserError, match="cannot be read"):
        load_checkpoint(path)
    assert not marker.exists()


def test_checkpoint_of_another_model_config_lists_the_differing_fields(tmp_path):
    path = tiny_checkpoint(tmp_path / "c.safetensors", F_dim=16, N_dim=4)
    expected = RunConfig(model=tiny_model_config(F_dim=32, N_dim=6))
    with pytest.raises(UserError) as err:
        load_checkpoint(path, expected=expected)
    message = str(err.value)
    assert "c.safetensors was trained with another model config" in message
    assert "model.F_dim: 16 != 32" in message and "model.N_dim: 4 != 6" in message
    assert "L_dim" not in message  # only the fields that differ
    assert load_checkpoint(path, expected=RunConfig(model=tiny_model_config())).config.model.F_dim == 16


# ----------------------------------------------------------------------------------- path escapes


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.mark.parametrize("name", ["../escape", "../../escape", "a/../../b", "sub/dir", "..", ""])
def test_test_sequence_names_cannot_write_outside_out(tmp_path, monkeypatch, name):
    """Names come from folder names (the OS forbids '/' and '..'); a name that is one anyway is refused."""
    data = make_lab_dataset(tmp_path / "data", n_train=0, n_val=0, n_test=1, test_len=3)
    ckpt = tiny_checkpoint(tmp_path / "c.safetensors")
    real = predict_module.load_test_sequences

    def renamed(*args, **kwargs) -> list[TestSequence]:
        seqs = real(*args, **kwargs)
        seqs[0].name = name
        return seqs

    monkeypatch.setattr(predict_module, "load_test_sequences", renamed)
    before = files_under(tmp_path)
    with pytest.raises(UserError, match="not a plain folder name"):
        predict_test_split(ckpt, data, tmp_path / "work" / "out", progress=False)
    after = {p for p in files_under(tmp_path) if ".posevae_cache" not in p}
    assert after == {p for p in before if ".posevae_cache" not in p}  # nothing written anywhere


def test_test_outputs_stay_under_out_even_for_odd_folder_names(tmp_path):
    """Real folders with odd names ('1 ..', '..2', a symlink to a folder outside) write only under out."""
    data = make_lab_dataset(tmp_path / "data", n_train=0, n_val=0, n_test=2, test_len=3)
    test = data / "test"
    for sub in ("test_img", "test_label", "test_gt"):
        (test / sub / "0").rename(test / sub / "x..0")
    outside = tmp_path / "elsewhere"
    (test / "test_label" / "1").rename(outside)
    (test / "test_label" / "1").symlink_to(outside, target_is_directory=True)
    ckpt = tiny_checkpoint(tmp_path / "c.safetensors")
    with pytest.raises(UserError, match="not a plain folder name"):  # contains '..': refused, nothing written
        predict_test_split(ckpt, data, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    for sub in ("test_img", "test_label", "test_gt"):
        (test / sub / "x..0").rename(test / sub / "seq_0")
    before_outside = files_under(outside)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predict_test_split(ckpt, data, tmp_path / "out", progress=False)
    assert files_under(outside) == before_outside
    top = {p.name for p in tmp_path.iterdir()}
    assert top == {"data", "c.safetensors", "out", "elsewhere"}
    assert (tmp_path / "out" / "pred_seqseq_0.gif").is_file()
    assert (tmp_path / "out" / "pred_seq1.gif").is_file()


@pytest.mark.parametrize("entry", ["../x", "a/b", "..", ".hidden", "/abs", "x/../../y:kl_anneal_cycle=2"])
def test_compare_configuration_names_cannot_escape(entry):
    with pytest.raises(UserError, match="must be a folder name"):
        parse_configuration(entry)


def test_a_checkpoint_stored_with_frame_skip_still_loads(tmp_path):
    """ModelConfig.frame_skip is prev_frame_skip now (a skip connection of the previous frame's pixels; it
    skips
    no frames): configs stored before, in checkpoints and config.json, still load, with the same model."""
    from safetensors import safe_open

    config = RunConfig(model=tiny_model_config())
    assert config.model.prev_frame_skip  # the tiny preset has it
    path = tmp_path / "new.safetensors"
    save_checkpoint(path, Checkpoint(config, PoseVAE(config.model).state_dict(), {"epoch": 0}))
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is no dict)
    stored = json.loads(metadata["config"])
    stored["model"]["frame_skip"] = stored["model"].pop("prev_frame_skip")  # as an older posevae wrote it
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata={**metadata, "config": json.dumps(stored)})
    loaded = load_checkpoint(old)
    assert loaded.config == config
    PoseVAE(loaded.config.model).load_state_dict(loaded.model_state)
    assert RunConfig.from_dict(stored) == config
    with pytest.raises(UserError, match="Unknown ModelConfig fields"):
        RunConfig.from_dict({"model": {"frame_skips": True}})
