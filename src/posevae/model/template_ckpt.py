"""Checkpoints trained with the course template (``.ckpt``, a torch pickle) as posevae checkpoints.

The template saves ``{"state_dict": model.state_dict(), "optimizer": ..., "lr": ..., "tfr": ..., "last_epoch":
...}`` (its ``VAE_Model.save``; some copies save the model's state again as "optimizer"). Only the tensors
are read, with ``torch.load(weights_only=True)`` (:func:`posevae.model.checkpoint.load_lab_ckpt`); the
optimizer is ignored. The model is the ``template`` variant (:mod:`posevae.model.template`) at 32x64, with
F_dim, L_dim, N_dim and D_out_dim read from the tensors' shapes; every tensor is then checked against that
model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from posevae.config import ModelConfig, RunConfig, SampleConfig
from posevae.errors import UserError
from posevae.model.checkpoint import Checkpoint, load_checkpoint, load_lab_ckpt, save_checkpoint
from posevae.model.template import TEMPLATE_NOISE_SCALE, template_key
from posevae.model.vae import PoseVAE

TORCH_SUFFIXES = (".ckpt", ".pth", ".pt")
# torch.save's zip format; a bare pickle of protocol 2 to 5 (PROTO opcode 0x80, then the protocol). Not
# b"\x80" alone: a safetensors file starts with its header's length, little-endian, whose first byte can be
# 0x80.
TORCH_MAGIC = (b"PK\x03\x04", *(bytes([0x80, protocol]) for protocol in range(2, 6)))
STATE_PREFIX = "state_dict/"
# the template tensor each dimension is read from, and which axis: (key, axis)
DIM_SOURCES = {
    "F_dim": ("frame_transformation.6.weight", 0),  # RGB_Encoder's last Conv3x3(F/2, F)
    "L_dim": ("label_transformation.4.conv2.weight", 0),  # Label_Encoder's ResidualBlock(L/2, L)
    "N_dim": ("Gaussian_Predictor.6.weight", 1),  # Conv1x1(N, 2N)
    "D_out_dim": ("Decoder_Fusion.5.weight", 0),  # Conv1x1(D/2, D)
}
FIX = ("posevae reads checkpoints of the unmodified course template (modules/layers.py and "
       "modules/modules.py as handed out, saved by its VAE_Model.save); a changed model needs its own test "
       "code, or retrain with `posevae train --preset template`.")


def is_torch_checkpoint(path: str | Path) -> bool:
    """A torch pickle (``.ckpt``/``.pth``/``.pt``, or torch's zip / pickle bytes), not a safetensors file
    (``.safetensors``, or a run folder)."""
    path = Path(path)
    if path.suffix.lower() in TORCH_SUFFIXES:
        return True
    if path.suffix.lower() == ".safetensors" or not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(4).startswith(TORCH_MAGIC)


def open_checkpoint(path: str | Path) -> Checkpoint:
    """A posevae checkpoint (``.safetensors`` or run folder), or a course-template ``.ckpt`` converted."""
    return load_template_ckpt(path) if is_torch_checkpoint(path) else load_checkpoint(path)


def _template_state(path: Path) -> dict[str, torch.Tensor]:
    """The model's tensors of a template file, by their template names; a bare state dict is accepted too."""
    tensors = load_lab_ckpt(path)
    state = {k[len(STATE_PREFIX):]: v for k, v in tensors.items() if k.startswith(STATE_PREFIX)}
    if state:
        return state
    if any(k.startswith("frame_transformation.") for k in tensors):  # torch.save(model.state_dict(), ...)
        return tensors
    raise UserError(f"{path} holds no course-template model: no 'state_dict' entry with "
                    f"frame_transformation.* tensors (found {', '.join(sorted(tensors)[:3])} ...). {FIX}")


def infer_model_config(path: Path, state: dict[str, torch.Tensor]) -> ModelConfig:
    """The template variant at 32x64 whose F_dim, L_dim, N_dim, D_out_dim match the tensors' shapes."""
    dims: dict[str, int] = {}
    for name, (key, axis) in DIM_SOURCES.items():
        if key not in state or state[key].dim() != 4:
            found = "missing" if key not in state else f"shape {tuple(state[key].shape)}"
            raise UserError(f"{path} does not fit the course template's model: state_dict key '{key}' (it "
                            f"gives {name}) is {found}, expected a 4-d convolution weight. {FIX}")
        dims[name] = int(state[key].shape[axis])
    return ModelConfig(variant="template", F_dim=dims["F_dim"], L_dim=dims["L_dim"], N_dim=dims["N_dim"],
                       D_out_dim=dims["D_out_dim"])


def check_template_state(path: Path, state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
                         model: ModelConfig) -> None:
    """UserError naming the first key that does not fit: missing, of another shape, or unexpected."""
    dims = f"F_dim={model.F_dim}, L_dim={model.L_dim}, N_dim={model.N_dim}, D_out_dim={model.D_out_dim}"
    where = f"{path} does not fit the course template's model at {dims} (read from its shapes)"
    names = {template_key(k): v for k, v in expected.items()}
    for name, want in names.items():
        if name not in state:
            raise UserError(f"{where}: state_dict key '{name}' is missing (expected shape "
                            f"{tuple(want.shape)}). {FIX}")
        if state[name].shape != want.shape:
            raise UserError(f"{where}: state_dict key '{name}' has shape {tuple(state[name].shape)}, "
                            f"expected {tuple(want.shape)}. {FIX}")
    extra = [k for k in state if k not in names]
    if extra:
        more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
        raise UserError(f"{where}: unexpected state_dict key '{extra[0]}' (shape "
                        f"{tuple(state[extra[0]].shape)}){more}. {FIX}")


def load_template_ckpt(path: str | Path) -> Checkpoint:
    """A course-template ``.ckpt`` as a posevae :class:`Checkpoint` (variant template, noise scale 1.0).

    The weights are renamed to posevae's names (:func:`posevae.model.template.template_key`) and cast to the
    model's dtypes; the config's ``sample.noise_scale`` is the template's test-time N(0, I).
    """
    path = Path(path)
    state = _template_state(path)
    model = infer_model_config(path, state)
    try:
        expected = PoseVAE(model).state_dict()
    except (ValueError, RuntimeError) as err:  # e.g. D_out_dim < 8 leaves a layer with no channels
        raise UserError(f"{path} gives a model that cannot be built ({err}). {FIX}") from None
    check_template_state(path, state, expected, model)
    model_state = {k: state[template_key(k)].to(v.dtype) for k, v in expected.items()}
    config = RunConfig(model=model, sample=SampleConfig(noise_scale=TEMPLATE_NOISE_SCALE))
    return Checkpoint(config, model_state, {"converted_from": str(path), "source": "course template"})


def convert_template_ckpt(ckpt: str | Path, out: str | Path) -> Checkpoint:
    """Convert the course template's ``.ckpt`` ``ckpt`` into the posevae checkpoint ``out``; returns what was
    written."""
    out = Path(out)
    if out.suffix != ".safetensors":
        raise UserError(f"--out {out} must end in .safetensors (posevae checkpoints are safetensors files).")
    checkpoint = load_template_ckpt(ckpt)
    try:
        save_checkpoint(out, checkpoint)
    except OSError as err:
        raise UserError(f"Cannot write {out} ({err.strerror or err}): pass an --out path that can be "
                        "written.") from None
    return checkpoint
