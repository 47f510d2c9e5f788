"""The training step: per-step backward equals one backward per clip, the batched step computes the
sequential step's loss and gradients, and a tiny model really learns."""

import pytest
import torch

from posevae.config import MODEL_PRESETS, ModelConfig
from posevae.losses import kl_to_standard_normal, reconstruction_mse
from posevae.model.rollout import rollout
from posevae.model.vae import PoseVAE
from posevae.training.step import batched_step_frames, step_for, train_clip, widest_activation_bytes
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
        train_clip(model, frames, poses, beta=0.5, teacher_forcing=teacher_forcing, step="sequential")
        got = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        assert got.keys() == reference.keys() and len(got) > 10
        for name, grad in got.items():
            scale = reference[name].abs().max().clamp_min(1e-12)
            assert ((grad - reference[name]).abs().max() / scale) < 1e-4, name


def small_preset(preset: str, **overrides) -> ModelConfig:
    """A preset's architecture at 16x32 with narrow layers (tiny is small already)."""
    narrow = {} if preset == "tiny" else {"F_dim": 16, "L_dim": 8, "N_dim": 4, "D_out_dim": 24}
    return ModelConfig(frame_H=16, frame_W=32, **{**MODEL_PRESETS[preset], **narrow, **overrides})


def gradients_of(model, frames, poses, noise, **kwargs):
    model.zero_grad(set_to_none=True)
    stats = train_clip(model, frames, poses, beta=0.5, noise=noise, gdl_weight=0.5, person_weight=1.0,
                       **kwargs)
    return stats, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("teacher_forcing", [True, False], ids=["tf-on", "tf-off"])
@pytest.mark.parametrize("preset,prior", [("lab", "fixed"), ("fast", "fixed"), ("sharp", "fixed"),
                                          ("template", "fixed"), ("tiny", "fixed"), ("tiny", "learned"),
                                          ("sharp", "learned")])
def test_batched_step_gives_the_sequential_loss_and_gradients(preset, prior, teacher_forcing):
    """With BatchNorm's statistics held fixed (eval mode) and the same noise, one batch of B x (T - 1), or
    chunks of it, computes the sums the lab's step-by-step order does: loss terms and every gradient, with the
    edge and person losses on. In float64, so the comparison is not blurred by fp32 rounding (the template
    variant, without a sigmoid, amplifies it to a few percent in fp32)."""
    torch.set_default_dtype(torch.float64)
    try:
        model = PoseVAE(small_preset(preset, prior=prior)).eval()
        frames = torch.rand(2, 6, 3, 16, 32)
        poses = (torch.rand(2, 6, 3, 16, 32) > 0.8).double()
        noise = torch.randn(2, 5, *model.latent_shape)
        runs = {name: gradients_of(model, frames, poses, noise, teacher_forcing=teacher_forcing, **kwargs)
                for name, kwargs in {"sequential": {"step": "sequential"}, "batched": {"step": "batched"},
                                     "chunks": {"step": "batched", "frames_per_forward": 4}}.items()}
    finally:
        torch.set_default_dtype(torch.float32)
    reference_stats, reference = runs["sequential"]
    assert len(reference) > 10
    for name in ("batched", "chunks"):
        stats, grads = runs[name]
        assert stats.finite
        for term in ("loss_per_frame", "mse_per_frame", "kl_per_frame"):
            expected = getattr(reference_stats, term)
            assert getattr(stats, term) == pytest.approx(expected, rel=1e-6), (name, term)
        assert grads.keys() == reference.keys()
        for key, grad in grads.items():
            scale = reference[key].abs().max().clamp_min(1e-12)
            assert ((grad - reference[key]).abs().max() / scale) < 1e-10, (name, key)


@pytest.mark.parametrize("teacher_forcing", [True, False], ids=["tf-on", "tf-off"])
@pytest.mark.parametrize("preset", ["tiny", "lab", "sharp", "template"])
def test_in_training_mode_too_the_batched_step_trains_the_sequential_model(preset, teacher_forcing):
    """BatchNorm in training mode: the batched step normalises each time step's B frames apart and updates
    the running statistics once per step, in order (StepBatchNorm2d), so loss, gradients and the running
    statistics are the sequential step's (the statistics to the last bit; the gradients within the fp32
    rounding of the loss terms, which a batch-dependent normalisation can flip by one ulp)."""
    torch.set_default_dtype(torch.float64)
    try:
        frames = torch.rand(2, 6, 3, 16, 32)
        poses = (torch.rand(2, 6, 3, 16, 32) > 0.8).double()
        runs = {}
        for name, kwargs in {"sequential": {"step": "sequential"}, "batched": {"step": "batched"},
                             "chunks": {"step": "batched", "frames_per_forward": 4}}.items():
            torch.manual_seed(3)
            model = PoseVAE(small_preset(preset)).train()
            noise = torch.randn(2, 5, *model.latent_shape)
            stats, grads = gradients_of(model, frames, poses, noise, teacher_forcing=teacher_forcing,
                                        **kwargs)
            runs[name] = stats, grads, {n: b.clone() for n, b in model.named_buffers()}
    finally:
        torch.set_default_dtype(torch.float32)
    reference_stats, reference, reference_buffers = runs["sequential"]
    assert any("running_mean" in n for n in reference_buffers)
    assert int(reference_buffers["pose_encoder.net.2.num_batches_tracked"]) == 5  # once per step
    for name in ("batched", "chunks"):
        stats, grads, buffers = runs[name]
        assert stats.loss_per_frame == pytest.approx(reference_stats.loss_per_frame, rel=1e-6), name
        for key, buffer in buffers.items():
            assert torch.equal(buffer, reference_buffers[key]), (name, key)
        for key, grad in grads.items():
            scale = reference[key].abs().max().clamp_min(1e-12)
            assert ((grad - reference[key]).abs().max() / scale) < 1e-3, (name, key)


def test_auto_batches_except_on_a_cpu_without_teacher_forcing():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert step_for("auto", cpu, True) == "batched"
    assert step_for("auto", cpu, False) == "sequential"  # the rollout first would cost more than it saves
    assert step_for("auto", cuda, False) == step_for("auto", cuda, True) == "batched"
    assert step_for("sequential", cuda, True) == "sequential"
    assert step_for("batched", cpu, False) == "batched"


def test_the_cpu_chunk_follows_the_widest_activation():
    """On a CPU a forward of the batched step takes as many frames as keep the widest layer within the budget:
    more for a narrow model than for a wide one; on a GPU all of them."""
    narrow, wide = PoseVAE(small_preset("tiny")), PoseVAE(small_preset("lab", F_dim=64))
    assert widest_activation_bytes(narrow) < widest_activation_bytes(wide)
    assert widest_activation_bytes(wide) % (16 * 32 * 4) == 0  # the lab model's widest layer: full resolution
    cpu = torch.device("cpu")
    assert batched_step_frames(narrow, cpu) > batched_step_frames(wide, cpu) >= 1
    assert batched_step_frames(wide, torch.device("cuda")) is None


@pytest.mark.parametrize("step", ["sequential", "batched"])
def test_tiny_model_overfits_one_clip(step):
    torch.manual_seed(0)
    frames, poses = moving_square_clip()
    model = PoseVAE(tiny_model_config())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for i in range(150):
        optimizer.zero_grad(set_to_none=True)
        stats = train_clip(model, frames, poses, beta=1e-3, teacher_forcing=i % 2 == 0, step=step)
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


@pytest.mark.parametrize("step", ["sequential", "batched"])
def test_a_clip_and_a_validation_video_sync_with_the_host_a_fixed_number_of_times(monkeypatch, step):
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
            train_clip(model, frames, frames, beta=1.0, teacher_forcing=step == "batched", step=step)
            n_train = len(calls)
            evaluate_video(model, video, device=torch.device("cpu"), beta=1.0, noise_scale=0.5, seed=0)
            counts[T] = (n_train, len(calls) - n_train)
    assert counts[4] == counts[12], counts


@pytest.mark.parametrize("step", ["sequential", "batched"])
def test_a_non_finite_step_marks_the_clip_and_its_stats_stay_finite_elsewhere(step):
    model = PoseVAE(tiny_model_config())
    frames = torch.rand(1, 5, 3, 16, 32)
    assert train_clip(model, frames, frames, beta=1.0, teacher_forcing=True, step=step).finite
    frames[0, 3] = float("nan")  # the truth of step 3: its loss is NaN
    model.zero_grad()
    stats = train_clip(model, frames, frames, beta=1.0, teacher_forcing=True, step=step)
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


@pytest.mark.parametrize("prior", ["fixed", "learned"])
def test_validation_rolls_out_prior_and_posterior_as_one_batch_with_the_numbers_of_two(prior):
    """The batch of 2 gives what the two rollouts of their own give: the prior's with noise from ``seed``, the
    posterior's (val_mse, val_kl, its PSNR) with noise from ``seed + 1``."""
    from posevae.data.lab import Video
    from posevae.losses import step_kl
    from posevae.metrics import psnr
    from posevae.training.validation import evaluate_video

    model = PoseVAE(tiny_model_config(prior=prior)).eval()
    u8 = (torch.rand(9, 3, 16, 32) * 255).to(torch.uint8)
    labels = ((torch.rand(9, 3, 16, 32) > 0.9) * 255).to(torch.uint8)
    got = evaluate_video(model, Video(frames=u8, labels=labels, names=[str(k) for k in range(9)]),
                         device=torch.device("cpu"), beta=0.5, noise_scale=0.5, seed=4)
    frames, poses = (u8[None] / 255.0), (labels[None] / 255.0)
    terms = []

    def on_step(t, out):
        terms.append((reconstruction_mse(out.frame, frames[:, t]), step_kl(out)))

    with torch.no_grad():
        prior_run = rollout(model, frames[:, 0], poses, generator=torch.Generator().manual_seed(4))
        posterior_run = rollout(model, frames[:, 0], poses, truth=frames, use_posterior=True,
                                generator=torch.Generator().manual_seed(5), on_step=on_step)
    assert got["val_psnr"] == pytest.approx(psnr(prior_run[0, 1:], frames[0, 1:]).mean().item(), abs=1e-4)
    assert got["per_frame"]["psnr"] == pytest.approx(psnr(prior_run[0, 1:], frames[0, 1:]).tolist(), abs=1e-4)
    assert got["val_psnr_posterior"] == pytest.approx(psnr(posterior_run[0, 1:], frames[0, 1:]).mean().item(),
                                                      abs=1e-4)
    mse, kl = (sum(float(term[k]) for term in terms) / 8 for k in (0, 1))
    assert got["val_mse"] == pytest.approx(mse, rel=1e-5) and got["val_kl"] == pytest.approx(kl, rel=1e-5)
    assert got["val_loss"] == pytest.approx(mse + 0.5 * kl, rel=1e-5)
