"""The learned prior p(z | previous frame, next pose) (SVG-LP): its KL, sampling, training and checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from posevae.config import RunConfig
from posevae.errors import UserError
from posevae.losses import kl_between_gaussians, kl_to_standard_normal, step_kl
from posevae.model.checkpoint import Checkpoint, load_checkpoint, model_from_checkpoint, save_checkpoint
from posevae.model.rollout import evaluating, generate
from posevae.model.vae import PoseVAE, StepOutput
from posevae.training.step import train_clip
from tests.conftest import tiny_model_config

H, W = 16, 32


def test_kl_between_gaussians_agrees_with_monte_carlo():
    torch.manual_seed(0)
    mu_q, lv_q = torch.tensor([0.7, -0.2, 0.1]), torch.tensor([-0.5, 0.4, 0.0])
    mu_p, lv_p = torch.tensor([0.3, 0.5, -1.0]), torch.tensor([0.2, -0.3, 1.0])
    q = torch.distributions.Normal(mu_q, (0.5 * lv_q).exp())
    p = torch.distributions.Normal(mu_p, (0.5 * lv_p).exp())
    z = q.sample((400_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0).sum().item()
    kl = kl_between_gaussians(mu_q.view(1, 3), lv_q.view(1, 3), mu_p.view(1, 3), lv_p.view(1, 3),
                              "batch").item()
    assert kl == pytest.approx(mc, abs=5e-3)
    assert kl == pytest.approx(torch.distributions.kl_divergence(q, p).sum().item(), rel=1e-5)


def test_kl_is_zero_when_the_prior_is_the_posterior_and_positive_otherwise():
    torch.manual_seed(1)
    mu, logvar = torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5)
    assert kl_between_gaussians(mu, logvar, mu, logvar).item() == pytest.approx(0.0, abs=1e-7)
    assert kl_between_gaussians(mu, logvar, mu + 0.1, logvar).item() > 0
    assert kl_between_gaussians(mu, logvar, mu, logvar + 0.1).item() > 0


def test_kl_to_the_standard_normal_is_the_special_case_and_normalisations_agree():
    torch.manual_seed(2)
    mu, logvar = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    zeros = torch.zeros_like(mu)
    for norm in ("elements", "batch"):
        assert kl_between_gaussians(mu, logvar, zeros, zeros, norm).item() == pytest.approx(
            kl_to_standard_normal(mu, logvar, norm).item(), rel=1e-5)
    # a learned prior's output goes to KL(q || p)
    out = StepOutput(torch.zeros(1), mu, logvar, mu + 1, logvar)
    assert step_kl(out).item() == pytest.approx(kl_between_gaussians(mu, logvar, mu + 1, logvar).item())
    assert step_kl(StepOutput(torch.zeros(1), mu, logvar)).item() == pytest.approx(
        kl_to_standard_normal(mu, logvar).item())


def test_kl_between_gaussians_clamps_log_variances():
    mu = torch.zeros(1, 1, 1, 1)
    huge = torch.full((1, 1, 1, 1), 500.0)
    ten = torch.full_like(huge, 10.0)
    assert kl_between_gaussians(mu, huge, mu, -huge).item() == pytest.approx(
        kl_between_gaussians(mu, ten, mu, -ten).item())
    assert torch.isfinite(kl_between_gaussians(mu, -huge, mu + 3, huge))


def _learned(**kw) -> PoseVAE:
    return PoseVAE(tiny_model_config(H, W, prior="learned", **kw))


def test_fixed_prior_has_exactly_the_lab_parameters_and_learned_adds_a_prior_net():
    fixed = PoseVAE(tiny_model_config(H, W))
    learned = _learned()
    assert fixed.prior is None
    extra = set(learned.state_dict()) - set(fixed.state_dict())
    assert extra and all(k.startswith("prior.") for k in extra)
    assert set(fixed.state_dict()) <= set(learned.state_dict())


def test_learned_prior_outputs_and_sampling_around_its_mean():
    model = _learned().eval()
    prev, pose, nxt = (torch.rand(2, 3, H, W) for _ in range(3))
    with torch.no_grad():
        post = model(prev, pose, nxt)
        assert post.prior_mu.shape == post.mu.shape == (2, *model.latent_shape)
        mean = model(prev, pose, z_mode="mean")
        zero_noise = model(prev, pose, noise_scale=0.0)
        sampled = model(prev, pose, noise_scale=1.0)
    assert mean.mu is None and mean.prior_mu is not None
    assert torch.equal(mean.frame, zero_noise.frame)  # noise scale 0: z = mu_p exactly
    assert not torch.equal(mean.frame, sampled.frame)
    # the mean is the prior's mean, not 0 (which is what the fixed prior would use)
    model.prior.net[-1].bias.data.fill_(2.0)
    with torch.no_grad():
        shifted = model(prev, pose, z_mode="mean")
    assert not torch.equal(mean.frame, shifted.frame)


def test_training_with_a_learned_prior_reaches_the_prior_and_lowers_the_loss():
    torch.manual_seed(0)
    model = _learned()
    frames, poses = torch.rand(2, 4, 3, H, W), torch.rand(2, 4, 3, H, W)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        stats = train_clip(model, frames, poses, beta=1.0, teacher_forcing=True)
        if not losses:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.prior.parameters())
        opt.step()
        losses.append(stats.loss_per_frame)
    assert stats.finite and losses[-1] < 0.5 * losses[0]


def test_learned_prior_checkpoint_round_trips(tmp_path):
    torch.manual_seed(3)
    config = RunConfig(model=tiny_model_config(H, W, prior="learned"))
    model = PoseVAE(config.model)
    path = tmp_path / "learned.safetensors"
    save_checkpoint(path, Checkpoint(config, model.state_dict()))
    loaded = load_checkpoint(path)
    assert loaded.config.model.prior == "learned"
    again = model_from_checkpoint(loaded, path, torch.device("cpu"))
    first, poses = torch.rand(1, 3, H, W), torch.rand(1, 5, 3, H, W)
    a = generate(model, first, poses, generator=torch.Generator().manual_seed(1))
    b = generate(again, first, poses, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_a_checkpoint_written_before_the_prior_option_loads_as_fixed(tmp_path):
    """Checkpoints record the prior in their config; older ones have no such key and mean the fixed prior."""
    config = RunConfig(model=tiny_model_config(H, W))
    path = tmp_path / "old.safetensors"
    save_checkpoint(path, Checkpoint(config, PoseVAE(config.model).state_dict()))
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    old_config = json.loads(metadata["config"])
    del old_config["model"]["prior"]
    metadata["config"] = json.dumps(old_config)
    save_file(load_file(str(path)), str(path), metadata=metadata)
    loaded = load_checkpoint(path)
    assert loaded.config.model.prior == "fixed"
    model_from_checkpoint(loaded, path, torch.device("cpu"))  # strict load: the same parameters


def test_a_fixed_checkpoint_does_not_load_into_a_learned_config(tmp_path):
    config = RunConfig(model=tiny_model_config(H, W))
    path = tmp_path / "fixed.safetensors"
    save_checkpoint(path, Checkpoint(config, PoseVAE(config.model).state_dict()))
    with pytest.raises(UserError, match="prior"):
        load_checkpoint(path, expected=RunConfig(model=tiny_model_config(H, W, prior="learned")))


def test_unknown_prior_is_a_user_error():
    with pytest.raises(UserError, match="--prior"):
        tiny_model_config(H, W, prior="gaussian")


def test_per_row_generators_make_rows_independent_of_the_batch():
    model = _learned()
    first, poses = torch.rand(3, 3, H, W), torch.rand(3, 4, 3, H, W)
    with evaluating(model):
        batch = generate(model, first, poses, noise_scale=1.0,
                         generator=[torch.Generator().manual_seed(s) for s in (5, 6, 7)])
        alone = generate(model, first[1:2], poses[1:2], noise_scale=1.0,
                         generator=[torch.Generator().manual_seed(6)])
    torch.testing.assert_close(batch[1:2], alone, atol=1e-5, rtol=0)
    assert not torch.allclose(batch[0, 1:], batch[1, 1:])
