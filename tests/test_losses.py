import math

import pytest
import torch

from posevae.losses import kl_to_standard_normal, reconstruction_mse


def closed_form_kl(mu, logvar):
    """Per-element KL(N(mu, s^2) || N(0, 1)) = log(1/s) + (s^2 + mu^2) / 2 - 1/2, written independently."""
    total = 0.0
    for m, lv in zip(mu.flatten().tolist(), logvar.flatten().tolist()):
        s2 = math.exp(lv)
        total += -0.5 * lv + 0.5 * (s2 + m * m) - 0.5
    return total


def test_kl_equals_closed_form_with_both_normalisations():
    torch.manual_seed(1)
    mu, logvar = torch.randn(3, 4, 5, 6), torch.randn(3, 4, 5, 6)
    expected = closed_form_kl(mu, logvar)
    assert kl_to_standard_normal(mu, logvar, "elements").item() == pytest.approx(expected / mu.numel(), rel=1e-5)
    assert kl_to_standard_normal(mu, logvar, "batch").item() == pytest.approx(expected / 3, rel=1e-5)


def test_kl_is_zero_for_the_standard_normal_and_positive_otherwise():
    zeros = torch.zeros(2, 3, 4, 4)
    assert kl_to_standard_normal(zeros, zeros).item() == pytest.approx(0.0, abs=1e-7)
    assert kl_to_standard_normal(zeros + 0.3, zeros).item() > 0


def test_kl_clamps_logvar():
    mu = torch.zeros(1, 1, 1, 1)
    huge = torch.full((1, 1, 1, 1), 500.0)
    assert kl_to_standard_normal(mu, huge).item() == pytest.approx(closed_form_kl(mu, torch.full_like(huge, 10.0)))
    assert math.isfinite(kl_to_standard_normal(mu, -huge).item())


def test_kl_monte_carlo_agrees():
    torch.manual_seed(0)
    mu, logvar = torch.tensor([0.7, -0.2]), torch.tensor([-0.5, 0.4])
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(400_000, 2)
    log_q = torch.distributions.Normal(mu, std).log_prob(z)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z)
    mc = (log_q - log_p).mean(0).sum().item()
    assert kl_to_standard_normal(mu.view(1, 2), logvar.view(1, 2), "batch").item() == pytest.approx(mc, abs=5e-3)


def test_mse():
    a, b = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    assert reconstruction_mse(a, b).item() == pytest.approx(0.25)
