"""The training step: per-step backward equals one backward per clip, and a tiny model really learns."""

import pytest
import torch

from posevae.losses import kl_to_standard_normal, reconstruction_mse
from posevae.model.rollout import rollout
from posevae.model.vae import PoseVAE
from posevae.training.step import train_clip
from tests.conftest import tiny_model_config


def moving_square_clip(T: int = 8, h: int = 16, w: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A bright square moving right on a dark gradient; the pose image marks the square's centre."""
    frames = torch.zeros(1, T, 3, h, w)
    poses = torch.zeros(1, T, 3, h, w)
    frames[..., 0, :, :] = torch.linspace(0.1, 0.3, w)
    for t in range(T):
        x = 2 + 3 * t
        frames[0, t, :, 5:11, x:x + 6] = torch.tensor([0.9, 0.6, 0.2]).view(3, 1, 1)
        poses[0, t, 1, 7:9, x + 2:x + 4] = 1.0
    return frames, poses


def clip_loss_single_backward(model, frames, poses, beta, teacher_forcing):
    """The seed's way: sum the losses of the whole clip, then one backward."""
    losses = []

    def on_step(t, out):
        kl = kl_to_standard_normal(out.mu, out.logvar)
        losses.append(reconstruction_mse(out.frame, frames[:, t]) + beta * kl)

    rollout(model, frames[:, 0], poses, truth=frames, use_posterior=True, teacher_forcing=teacher_forcing,
            on_step=on_step)
    torch.stack(losses).sum().backward()


def test_per_step_backward_equals_one_backward_per_clip():
    torch.manual_seed(0)
    frames, poses = torch.rand(2, 6, 3, 16, 32), torch.rand(2, 6, 3, 16, 32)
    for teacher_forcing in (True, False):
        model = PoseVAE(tiny_model_config())
        torch.manual_seed(7)
        clip_loss_single_backward(model, frames, poses, 0.5, teacher_forcing)
        reference = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        torch.manual_seed(7)
        train_clip(model, frames, poses, beta=0.5, teacher_forcing=teacher_forcing)
        got = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        assert got.keys() == reference.keys() and len(got) > 10
        for name, grad in got.items():
            scale = reference[name].abs().max().clamp_min(1e-12)
            assert ((grad - reference[name]).abs().max() / scale) < 1e-4, name


def test_tiny_model_overfits_one_clip():
    torch.manual_seed(0)
    frames, poses = moving_square_clip()
    model = PoseVAE(tiny_model_config())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(150):
        optimizer.zero_grad(set_to_none=True)
        stats = train_clip(model, frames, poses, beta=1e-3, teacher_forcing=step % 2 == 0)
        assert stats.finite
        optimizer.step()
        losses.append(stats.loss_per_frame)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first / 10, (first, last)


def _count_host_syncs(monkeypatch) -> list[str]:
    """Record every tensor -> Python conversion (item, bool, float, tolist): each is a host-device sync on a
    GPU."""
    calls: list[str] = []
    for name in ("item", "__bool__", "__float__", "tolist"):
        real = getattr(torch.Tensor, name)

        def spy(self, *a, _real=real, _name=name, **k):
            calls.append(_name)
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return calls


def test_a_clip_and_a_validation_video_sync_with_the_host_a_fixed_number_of_times(monkeypatch):
    """Not once per time step: the loop queues GPU work without waiting for it (issue 7)."""
    from posevae.data.lab import Video
    from posevae.training.validation import evaluate_video

    model = PoseVAE(tiny_model_config())
    counts = {}
    for T in (4, 12):
        frames = torch.rand(1, T, 3, 16, 32)
        u8 = (frames[0] * 255).to(torch.uint8)
        video = Video(frames=u8, labels=u8, names=[f"{k}.png" for k in range(T)], source=None)
        with monkeypatch.context() as m:
            calls = _count_host_syncs(m)
            train_clip(model, frames, frames, beta=1.0, teacher_forcing=True)
            n_train = len(calls)
            evaluate_video(model, video, device=torch.device("cpu"), beta=1.0, noise_scale=0.5, seed=0)
            counts[T] = (n_train, len(calls) - n_train)
    assert counts[4] == counts[12], counts


def test_a_non_finite_step_marks_the_clip_and_its_stats_stay_finite_elsewhere():
    model = PoseVAE(tiny_model_config())
    frames = torch.rand(1, 5, 3, 16, 32)
    assert train_clip(model, frames, frames, beta=1.0, teacher_forcing=True).finite
    frames[0, 3] = float("nan")  # the truth of step 3: its loss is NaN
    model.zero_grad()
    stats = train_clip(model, frames, frames, beta=1.0, teacher_forcing=True)
    assert not stats.finite


@pytest.mark.parametrize("option,weight", [("gdl_weight", 0.5), ("person_weight", 2.0)])
def test_an_extra_loss_term_counts_only_when_its_weight_is_set(option, weight):
    """The edge loss and the person loss: weight 0 is the lab's loss bit for bit; a weight adds to the loss
    and leaves the MSE it reports alone."""
    frames, poses = moving_square_clip(T=4)
    model = PoseVAE(tiny_model_config(16, 32))
    runs = {}
    for name, kwargs in {"plain": {}, "zero": {option: 0.0}, "weighted": {option: weight}}.items():
        torch.manual_seed(1)
        runs[name] = train_clip(model, frames, poses, beta=0.0, teacher_forcing=True, **kwargs)
    assert runs["zero"] == runs["plain"]
    assert runs["weighted"].mse_per_frame == pytest.approx(runs["plain"].mse_per_frame)
    assert runs["weighted"].loss_per_frame > runs["plain"].loss_per_frame + 1e-4
