"""Checkpoints as plain data: one safetensors file, written atomically, never unpickled.

The file holds the model weights (``model/...``), the optimizer's tensors (``optimizer/<param>/<key>``)
and the RNG states (``rng/...``) as tensors; the run config, the training state (epoch, best PSNR,
scheduler, optimizer hyper-parameters) and a format version as JSON strings in the safetensors metadata.
Loading rebuilds the model from the stored config, so a checkpoint is self-describing.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from posevae.config import RunConfig, config_diff
from posevae.errors import UserError
from posevae.files import atomic_write
from posevae.model.vae import PoseVAE

FORMAT = "posevae-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    config: RunConfig
    model_state: dict[str, torch.Tensor]
    train_state: dict[str, Any] = field(default_factory=dict)  # epoch, best_psnr, scheduler, ...
    optimizer_state: dict[str, Any] | None = None
    rng_state: dict[str, torch.Tensor] = field(default_factory=dict)


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{idx}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split("/", 2)
        state.setdefault(int(idx), {})[key] = value
    for idx, values in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in ckpt.model_state.items()}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(ckpt.config.to_dict()),
        "train_state": json.dumps(ckpt.train_state),
    }
    if ckpt.optimizer_state is not None:
        opt_tensors, opt_meta = _flatten_optimizer(ckpt.optimizer_state)
        tensors.update(opt_tensors)
        metadata["optimizer"] = json.dumps(opt_meta)
    tensors.update({f"rng/{k}": v.cpu() for k, v in ckpt.rng_state.items()})
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


@dataclass
class CheckpointInfo:
    """What a checkpoint says of itself, without its tensors."""

    config: RunConfig
    train_state: dict[str, Any]  # epoch (the last finished, from 0), best_psnr, scheduler, ...


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """The run config and training state of a posevae checkpoint, read from its safetensors header only (no
    tensor is read); the same refusals as :func:`load_checkpoint`."""
    path = _checkpoint_file(path)
    metadata = _posevae_metadata(path)
    return CheckpointInfo(RunConfig.from_dict(json.loads(metadata["config"])),
                          json.loads(metadata.get("train_state", "{}")))


def _checkpoint_file(path: str | Path) -> Path:
    """``path``, or a run folder's (or its checkpoints folder's) last.safetensors; UserError when missing."""
    path = Path(path)
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        path = folder / "last.safetensors"
    if not path.is_file():
        raise UserError(f"Checkpoint {path} does not exist: pass a .safetensors file written by `posevae "
                        "train` (RUN/checkpoints/last.safetensors or best.safetensors).")
    return path


def _unreadable(path: Path, err: Exception) -> UserError:
    return UserError(f"Checkpoint {path} cannot be read ({err}): it is truncated or not a safetensors file. "
                     "Use another checkpoint (e.g. best.safetensors or an epoch_N file) of the run.")


def _posevae_metadata(path: Path) -> dict[str, str]:
    """The safetensors metadata of the posevae checkpoint ``path``; UserError for any other file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _unreadable(path, err) from None
    if metadata.get("format") != FORMAT:
        raise UserError(f"{path} is a safetensors file but not a posevae checkpoint (no posevae metadata): "
                        "pass a checkpoint written by `posevae train`.")
    if int(metadata.get("format_version", "0")) > FORMAT_VERSION:
        raise UserError(f"Checkpoint {path} has format version {metadata['format_version']}, newer than this "
                        f"posevae reads ({FORMAT_VERSION}): upgrade posevae.")
    return metadata


def load_checkpoint(path: str | Path, expected: RunConfig | None = None) -> Checkpoint:
    """Read a posevae checkpoint; with ``expected``, refuse one whose model config differs (and say how)."""
    path = _checkpoint_file(path)
    metadata = _posevae_metadata(path)
    config = RunConfig.from_dict(json.loads(metadata["config"]))
    if expected is not None and config.model != expected.model:
        diff = config_diff(config.to_dict()["model"], expected.to_dict()["model"], "model.")
        raise UserError(f"Checkpoint {path} was trained with another model config ({'; '.join(diff)}; "
                        "checkpoint != requested): use the checkpoint's own settings or another checkpoint.")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _unreadable(path, err) from None
    model_state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    opt = None
    if "optimizer" in metadata:
        opt = _unflatten_optimizer({k: v for k, v in tensors.items() if k.startswith("optimizer/")},
                                   json.loads(metadata["optimizer"]))
    rng = {k[len("rng/"):]: v for k, v in tensors.items() if k.startswith("rng/")}
    return Checkpoint(config, model_state, json.loads(metadata.get("train_state", "{}")), opt, rng)


def load_lab_ckpt(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of one of the course lab's ``.ckpt`` files (a torch pickle), read without running code.

    Only ``torch.load(weights_only=True)`` is used: it rebuilds tensors and plain containers and refuses any
    other pickled object, so a malicious file cannot execute anything. Returns ``{name: tensor}``, flattened
    with ``/`` from nested dicts (e.g. the lab's ``{"state_dict": {...}, "optimizer": {...}}``).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Checkpoint {path} does not exist: pass the path of a lab .ckpt file.")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, TypeError,
            ImportError, OSError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
        raise UserError(f"{path} is not a plain-weights checkpoint; refusing to unpickle arbitrary objects "
                        f"({detail[:200]}). Re-save it as tensors only (torch.save(model.state_dict(), ...)) "
                        "or use a posevae .safetensors checkpoint.") from None
    tensors: dict[str, torch.Tensor] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            tensors[prefix] = value
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}/{k}" if prefix else str(k), v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{prefix}/{i}" if prefix else str(i), v)

    walk("", obj)
    if not tensors:
        raise UserError(f"{path} holds no tensors ({type(obj).__name__}): it is not a model checkpoint.")
    return tensors


def model_from_checkpoint(checkpoint: Checkpoint, path: str | Path, device: torch.device) -> PoseVAE:
    """The model a checkpoint describes, with its weights, on ``device``; UserError when they do not fit."""
    model = PoseVAE(checkpoint.config.model)
    try:
        model.load_state_dict(checkpoint.model_state, strict=True)
    except RuntimeError as err:
        first_line = str(err).strip().splitlines()[0]
        raise UserError(f"Checkpoint {path} does not fit the model its own config describes ({first_line}): "
                        "it was written by another posevae version or is damaged; use another checkpoint."
                        ) from None
    return model.to(device)
