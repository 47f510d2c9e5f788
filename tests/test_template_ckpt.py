"""Checkpoints trained with the course template: the ``template`` model variant, loading, ``posevae convert``.

The reference below is this test's own re-implementation of the template's model, from
docs/course.md ("The model") and the layer lists of the template's modules/layers.py and
modules/modules.py (see posevae.model.template): template module names, ``nn.LeakyReLU(True)``, no output
activation, ``mu + exp(0.5 logvar) * eps``, and generation with the model in training mode (the template's
Test_model.eval shadows nn.Module.eval) one sequence at a time.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from posevae.cli.main import main
from posevae.config import MODEL_PRESETS, ModelConfig, RunConfig
from posevae.errors import UserError
from posevae.model.checkpoint import Checkpoint, model_from_checkpoint, save_checkpoint
from posevae.model.rollout import generate
from posevae.model.template_ckpt import is_torch_checkpoint, load_template_ckpt, open_checkpoint
from posevae.model.vae import PoseVAE
from tests.synthetic import make_lab_dataset

H, W = 32, 64  # the template's frame size
DIMS = {"F_dim": 16, "L_dim": 8, "N_dim": 4, "D_out_dim": 16}
STEPS = 4  # frames per test sequence: the given one + 3 generated


# ------------------------------------------------------------------------- the template, re-implemented


class RefResidual(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(x), 0.01)), 0.01)
        return y + (x if self.skip is None else self.skip(x))


class RefDepthConv(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(cin, cin, 1), nn.LeakyReLU(0.01))
        self.depth_conv = nn.Conv2d(cin, cin, 3, padding=1, groups=cin)
        self.conv2 = nn.Conv2d(cin, cout, 1)
        self.adaptor = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.depth_conv(self.conv1(x)))
        return y + (x if self.adaptor is None else self.adaptor(x))


class RefConvFFN(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, 4 * ch, 1)
        self.conv_out = nn.Conv2d(2 * ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.conv(x).chunk(2, dim=1)
        return x + self.conv_out(a * F.leaky_relu(b, 0.1))


class RefDCB(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.block = nn.Sequential(RefDepthConv(cin, cout), RefConvFFN(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class RefTemplate(nn.Module):
    """VAE_Model's five parts under the template's names."""

    def __init__(self, F_dim: int, L_dim: int, N_dim: int, D_out_dim: int) -> None:
        super().__init__()
        f, n, d, c = F_dim, N_dim, D_out_dim, F_dim + L_dim + N_dim
        self.frame_transformation = nn.Sequential(
            RefResidual(3, f // 8), RefDCB(f // 8, f // 8), RefResidual(f // 8, f // 4),
            RefDCB(f // 4, f // 4), RefResidual(f // 4, f // 2), RefDCB(f // 2, f // 2),
            nn.Conv2d(f // 2, f, 3, padding=1))
        self.label_transformation = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(3, L_dim // 2, 7), nn.BatchNorm2d(L_dim // 2),
            nn.LeakyReLU(True), RefResidual(L_dim // 2, L_dim))
        self.Gaussian_Predictor = nn.Sequential(
            RefResidual(F_dim + L_dim, n // 4), RefDCB(n // 4, n // 4), RefResidual(n // 4, n // 2),
            RefDCB(n // 2, n // 2), RefResidual(n // 2, n), nn.LeakyReLU(True), nn.Conv2d(n, 2 * n, 1))
        self.Decoder_Fusion = nn.Sequential(
            RefDCB(c, c), RefResidual(c, c // 4), RefDCB(c // 4, c // 2), RefResidual(c // 2, c // 2),
            RefDCB(c // 2, d // 2), nn.Conv2d(d // 2, d, 1))
        self.Generator = nn.Sequential(
            RefDCB(d, d), RefResidual(d, d // 2), RefDCB(d // 2, d // 2), RefResidual(d // 2, d // 4),
            RefDCB(d // 4, d // 4), RefResidual(d // 4, d // 8), RefDCB(d // 8, d // 8),
            nn.Conv2d(d // 8, 3, 1))

    def posterior(self, frame: torch.Tensor, pose_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.cat([self.frame_transformation(frame), pose_feat], 1)
        mu, logvar = self.Gaussian_Predictor(features).chunk(2, 1)
        return mu, logvar

    def step(self, prev: torch.Tensor, pose: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        features = [self.frame_transformation(prev), self.label_transformation(pose), z]
        return self.Generator(self.Decoder_Fusion(torch.cat(features, 1)))


def reference_model(seed: int = 0) -> RefTemplate:
    torch.manual_seed(seed)
    ref = RefTemplate(**DIMS)
    bn = ref.label_transformation[2]
    with torch.no_grad():  # BatchNorm away from its identity start, so its mode matters
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    return ref


def save_template_ckpt(path: Path, state: dict[str, torch.Tensor], optimizer: object | None = None) -> Path:
    """As the template's VAE_Model.save writes it (its "optimizer" is the model's state again)."""
    torch.save({"state_dict": state, "optimizer": state if optimizer is None else optimizer, "lr": 1e-3,
                "tfr": 1.0, "last_epoch": 3}, path)
    return path


def draws(seed: int, n: int, shape: tuple[int, ...]) -> list[torch.Tensor]:
    """The eps a posevae step draws from ``torch.Generator().manual_seed(seed)``, n steps in a row."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.empty(shape).normal_(generator=gen) for _ in range(n)]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("template")
    ref = reference_model()
    ckpt = save_template_ckpt(root / "epoch=3.ckpt", ref.state_dict())
    DR = make_lab_dataset(root / "DR", n_train=0, n_val=0, n_test=2, test_len=STEPS, H=H, W=W)
    return {"root": root, "ref": ref, "ckpt": ckpt, "DR": DR}


def loaded_model(ckpt: Path) -> PoseVAE:
    return model_from_checkpoint(load_template_ckpt(ckpt), ckpt, torch.device("cpu"))


# ----------------------------------------------------------------------------------- the same numbers


def test_config_read_from_the_shapes(template):
    checkpoint = load_template_ckpt(template["ckpt"])
    m = checkpoint.config.model
    assert (m.variant, m.frame_H, m.frame_W) == ("template", H, W)
    assert {k: getattr(m, k) for k in DIMS} == DIMS
    assert checkpoint.config.sample.noise_scale == 1.0  # the template's test code: z ~ N(0, I)


def test_posterior_step_matches_the_template_in_training_mode(template):
    # a copy: the reference runs in training mode, which moves its BatchNorm's running statistics
    ref, model = copy.deepcopy(template["ref"]), loaded_model(template["ckpt"])
    model.train(), ref.train()  # BatchNorm with the statistics of a batch of 2, as the template trains
    torch.manual_seed(1)
    prev, pose, nxt = (torch.rand(2, 3, H, W) for _ in range(3))
    out = model(prev, pose, nxt, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        mu, logvar = ref.posterior(nxt, ref.label_transformation(pose))
        z = mu + torch.exp(0.5 * logvar) * draws(5, 1, mu.shape)[0]
        frame = ref.step(prev, pose, z)
    torch.testing.assert_close(out.mu, mu, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.logvar, logvar, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.frame, frame, atol=1e-5, rtol=1e-5)


def test_rollout_matches_the_template_test_code_row_by_row(template):
    """posevae generates 2 sequences in one batch; the template one at a time, never in eval mode."""
    # a copy: the reference runs in training mode, which moves its BatchNorm's running statistics
    ref, model = copy.deepcopy(template["ref"]), loaded_model(template["ckpt"])
    torch.manual_seed(2)
    first, poses = torch.rand(2, 3, H, W), torch.rand(2, STEPS, 3, H, W)
    gens = [torch.Generator().manual_seed(10 + row) for row in range(2)]
    frames = generate(model, first, poses, noise_scale=1.0, generator=gens)
    ref.train()
    for row in range(2):
        prev, expected = first[row:row + 1], [first[row:row + 1]]
        with torch.no_grad():
            for t, eps in enumerate(draws(10 + row, STEPS - 1, (1, DIMS["N_dim"], H, W)), start=1):
                prev = ref.step(prev, poses[row:row + 1, t], eps)  # the raw output is fed back, unclamped
                expected.append(prev)
        torch.testing.assert_close(frames[row:row + 1], torch.stack(expected, 1), atol=1e-5, rtol=1e-5)
    assert frames.min() < 0 or frames.max() > 1  # no clamp (and no sigmoid) inside the rollout


def test_the_lab_variant_on_the_same_weights_differs(template):
    """The template's quirks are what makes the numbers match: the lab model with its weights does not."""
    checkpoint = load_template_ckpt(template["ckpt"])
    lab = PoseVAE(ModelConfig(**DIMS))
    lab.load_state_dict(checkpoint.model_state)  # same parameter names and shapes
    template_model = loaded_model(template["ckpt"])
    first, poses = torch.rand(1, 3, H, W), torch.rand(1, 2, 3, H, W)
    a = generate(lab, first, poses, noise_scale=1.0, generator=torch.Generator().manual_seed(0))
    b = generate(template_model, first, poses, noise_scale=1.0, generator=torch.Generator().manual_seed(0))
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("optimizer", ["model state", "adam", "bare state dict"])
def test_optimizer_entries_are_ignored(template, tmp_path, optimizer):
    ref = template["ref"]
    path = tmp_path / "x.ckpt"
    if optimizer == "bare state dict":
        torch.save(ref.state_dict(), path)
    else:
        params = [p.detach().clone().requires_grad_() for p in ref.parameters()]  # ref's weights unchanged
        adam = torch.optim.Adam(params)
        sum(p.sum() for p in params).backward()
        adam.step()  # a real optimizer state: step, exp_avg, exp_avg_sq per parameter
        save_template_ckpt(path, ref.state_dict(), adam.state_dict() if optimizer == "adam" else None)
    a, b = load_template_ckpt(path).model_state, load_template_ckpt(template["ckpt"]).model_state
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------------ CLI


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([*argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_convert_then_test_equals_test_of_the_ckpt(template, capsys):
    root, DR, ckpt = template["root"], template["DR"], template["ckpt"]
    code, _, err = _cli(capsys, "test", "--ckpt", str(ckpt), "--DR", str(DR), "--out", str(root / "direct"),
                        "--device", "cpu", "--quiet")
    assert code == 0, err
    converted = root / "model.safetensors"
    code, out, err = _cli(capsys, "convert", str(ckpt), "--out", str(converted))
    assert code == 0, err
    assert out.count("\n") == 1 and str(converted) in out
    assert "F_dim 16, L_dim 8, N_dim 4, D_out_dim 16" in out
    code, _, err = _cli(capsys, "test", "--ckpt", str(converted), "--DR", str(DR), "--out",
                        str(root / "conv"), "--device", "cpu", "--quiet")
    assert code == 0, err
    direct = (root / "direct" / "submission.csv").read_bytes()
    assert direct == (root / "conv" / "submission.csv").read_bytes()
    assert direct.count(b"\n") == 1 + 2 * STEPS
    assert json.loads((root / "direct" / "summary.json").read_text())["noise_scale"] == 1.0


def test_transfer_reads_the_ckpt(template, capsys):
    root, DR = template["root"], template["DR"]
    out = root / "transfer"
    first, poses = DR / "test" / "test_img" / "0" / "0.png", DR / "test" / "test_label" / "0"
    code, _, err = _cli(capsys, "transfer", "--ckpt", str(template["ckpt"]), "--first-frame", str(first),
                        "--poses", str(poses), "--out", str(out), "--device", "cpu", "--quiet")
    assert code == 0, err
    assert sorted(p.name for p in (out / "frames").glob("*.png")) == [f"{k}.png" for k in range(STEPS)]
    assert json.loads((out / "summary.json").read_text())["noise_scale"] == 1.0


def _convert_and_test(ckpt: Path, DR: Path, tmp_path: Path) -> list[list[str]]:
    return [["convert", str(ckpt), "--out", str(tmp_path / "m.safetensors")],
            ["test", "--ckpt", str(ckpt), "--DR", str(DR), "--out", str(tmp_path / "o"), "--quiet"]]


def _broken(template, tmp_path: Path, how: str) -> tuple[Path, str]:
    state = dict(template["ref"].state_dict())
    if how == "shape":
        key = "Decoder_Fusion.2.block.0.depth_conv.weight"
        state[key] = torch.zeros(state[key].shape[0] + 1, *state[key].shape[1:])
        expect = f"'{key}' has shape"
    elif how == "missing":
        key = "Generator.3.conv2.bias"
        del state[key]
        expect = f"'{key}' is missing"
    else:
        state["Generator.8.weight"] = torch.zeros(3, 3, 1, 1)
        expect = "unexpected state_dict key 'Generator.8.weight'"
    return save_template_ckpt(tmp_path / "bad.ckpt", state), expect


@pytest.mark.parametrize("how", ["shape", "missing", "unexpected"])
def test_a_ckpt_that_does_not_fit_exits_2_naming_the_key(template, tmp_path, capsys, how):
    bad, expect = _broken(template, tmp_path, how)
    for argv in _convert_and_test(bad, template["DR"], tmp_path):
        code, _, err = _cli(capsys, *argv)
        assert code == 2 and err.count("\n") == 1, err
        assert expect in err and "bad.ckpt does not fit the course template's model" in err
        assert "unmodified course template" in err  # the fix
    assert not (tmp_path / "m.safetensors").exists() and not (tmp_path / "o").exists()


def test_a_malicious_ckpt_is_refused_and_never_runs(template, tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": template["ref"].state_dict(), "payload": Evil()}, evil)
    for argv in _convert_and_test(evil, template["DR"], tmp_path):
        code, _, err = _cli(capsys, *argv)
        assert code == 2 and "refusing to unpickle" in err and err.count("\n") == 1
    assert not marker.exists()


# ----------------------------------------------------------------------------------------- the config


def test_configs_without_the_variant_field_read_as_before():
    old = RunConfig().to_dict()
    del old["model"]["variant"]
    assert RunConfig.from_dict(old).model.variant == "posevae"
    assert RunConfig.from_dict(old) == RunConfig()


def test_the_template_variant_has_no_fast_options():
    with pytest.raises(UserError, match="--variant template"):
        ModelConfig(variant="template", downsample=2)
    with pytest.raises(UserError, match="--variant template"):
        ModelConfig(variant="template", prior="learned")


@pytest.mark.parametrize("name", ["best.safetensors", "weights.bin"])
def test_a_safetensors_file_whose_header_length_starts_with_0x80_is_not_taken_for_a_pickle(tmp_path, name):
    """A safetensors file begins with its JSON header's length (u64, little-endian): a header of 0x17280 bytes
    begins b"\\x80\\x72", which the pickle check once read as protocol 2+ (found on a demo checkpoint)."""
    cfg = RunConfig(model=ModelConfig(**MODEL_PRESETS["tiny"], frame_H=16, frame_W=32))
    model = PoseVAE(cfg.model)
    padded = {"epoch": 0, "pad": ""}
    path = tmp_path / "ckpt.safetensors"
    for _ in range(3):  # grow the metadata until the header is 0x..80 bytes long
        save_checkpoint(path, Checkpoint(cfg, model.state_dict(), padded))
        length = int.from_bytes(path.read_bytes()[:8], "little")
        padded["pad"] += "x" * ((0x80 - length) % 256)
    assert path.read_bytes()[0] == 0x80
    target = tmp_path / name
    path.rename(target)
    assert not is_torch_checkpoint(target)
    assert torch.equal(open_checkpoint(target).model_state["frame_encoder.net.0.conv1.weight"],
                       model.state_dict()["frame_encoder.net.0.conv1.weight"])
