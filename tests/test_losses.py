import math

import pytest
import torch

from posevae.losses import kl_to_standard_normal, reconstruction_mse


def closed_form_kl(mu, logvar):
    """Per-element KL(N(mu, s^2) || N(0, 1)) = log(1/s) + (s^2 + mu^2) / 2 - 1/2, written independently."""
    total = 0.0
    for m, lv in zip(mu.flatten().tolist(), logvar.flatten().tolist(), strict=True):
        s2 = math.exp(lv)
        total += -0.5 * lv + 0.5 * (s2 + m * m) - 0.5
    return total


def test_kl_equals_closed_form_with_both_normalisations():
    torch.manual_seed(1)
    mu, logvar = torch.randn(3, 4, 5, 6), torch.randn(3, 4, 5, 6)
    expected = closed_form_kl(mu, logvar)
    per_element = kl_to_standard_normal(mu, logvar, "elements").item()
    assert per_element == pytest.approx(expected / mu.numel(), rel=1e-5)
    assert kl_to_standard_normal(mu, logvar, "batch").item() == pytest.approx(expected / 3, rel=1e-5)


def test_kl_is_zero_for_the_standard_normal_and_positive_otherwise():
    zeros = torch.zeros(2, 3, 4, 4)
    assert kl_to_standard_normal(zeros, zeros).item() == pytest.approx(0.0, abs=1e-7)
    assert kl_to_standard_normal(zeros + 0.3, zeros).item() > 0


def test_kl_clamps_logvar():
    mu = torch.zeros(1, 1, 1, 1)
    huge = torch.full((1, 1, 1, 1), 500.0)
    clamped = closed_form_kl(mu, torch.full_like(huge, 10.0))
    assert kl_to_standard_normal(mu, huge).item() == pytest.approx(clamped)
    assert math.isfinite(kl_to_standard_normal(mu, -huge).item())


def test_kl_monte_carlo_agrees():
    torch.manual_seed(0)
    mu, logvar = torch.tensor([0.7, -0.2]), torch.tensor([-0.5, 0.4])
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(400_000, 2)
    log_q = torch.distributions.Normal(mu, std).log_prob(z)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z)
    mc = (log_q - log_p).mean(0).sum().item()
    kl = kl_to_standard_normal(mu.view(1, 2), logvar.view(1, 2), "batch").item()
    assert kl == pytest.approx(mc, abs=5e-3)


def test_mse():
    a, b = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    assert reconstruction_mse(a, b).item() == pytest.approx(0.25)


def test_the_kl_clamp_acts_only_on_the_unbounded_logvars_of_the_template_variant():
    """The posevae model bounds logvar softly inside (-10, 10), so the KL's clamp leaves its values alone; the
    template variant's logvar is unbounded, and there the clamp keeps exp() finite."""
    from posevae.model.vae import PoseVAE
    from tests.conftest import tiny_model_config

    torch.manual_seed(0)
    x = torch.rand(3, 2, 3, 16, 32)
    for variant in ("posevae", "template"):
        overrides = {"variant": variant}
        if variant == "template":
            overrides.update(downsample=1, prev_frame_skip=False)
        model = PoseVAE(tiny_model_config(16, 32, **overrides))
        with torch.no_grad():
            model.posterior.net[-1].bias[model.config.N_dim:] = 200.0  # logvar far beyond 10
            out = model(x[0], x[1], x[2])
        clamped = kl_to_standard_normal(out.mu, out.logvar)
        if variant == "posevae":
            assert out.logvar.abs().max() <= 10
            unclamped = -0.5 * torch.mean(1 + out.logvar - out.mu.pow(2) - out.logvar.exp())
            assert clamped.item() == pytest.approx(unclamped.item(), rel=1e-6)
        else:
            unclamped = -0.5 * torch.mean(1 + out.logvar - out.mu.pow(2) - out.logvar.exp())
            assert out.logvar.max() > 100 and torch.isfinite(clamped) and not torch.isfinite(unclamped)
