import pytest
import torch

from posevae.config import ModelConfig
from posevae.errors import UserError
from posevae.model.rollout import evaluating, generate, rollout
from posevae.model.vae import PoseVAE, count_parameters
from tests.conftest import tiny_model_config


@pytest.mark.parametrize("size", [(16, 32), (32, 64), (24, 40), (64, 48)])
@pytest.mark.parametrize("downsample", [1, 2])
def test_step_shapes_and_range(size, downsample):
    h, w = size
    model = PoseVAE(tiny_model_config(h, w, downsample=downsample))
    prev, pose, nxt = (torch.rand(3, 3, h, w) for _ in range(3))
    out = model(prev, pose, nxt)
    assert out.frame.shape == (3, 3, h, w)
    assert out.mu.shape == out.logvar.shape == (3, 4, h // downsample, w // downsample)
    assert out.frame.min() >= 0 and out.frame.max() <= 1
    prior = model(prev, pose)
    assert prior.mu is None and prior.frame.shape == (3, 3, h, w)


def test_lab_defaults_build_the_lab_model():
    model = PoseVAE(ModelConfig())
    c = model.config
    assert (c.F_dim, c.L_dim, c.N_dim, c.D_out_dim, c.frame_H, c.frame_W) == (128, 32, 12, 192, 32, 64)
    x = torch.rand(1, 3, 32, 64)
    assert model.frame_encoder(x).shape == (1, 128, 32, 64)
    assert model.pose_encoder(x).shape == (1, 32, 32, 64)
    out = model(x, x, x)
    assert out.mu.shape == (1, 12, 32, 64)
    assert 1.4e6 < count_parameters(model) < 2.0e6
    # no identity "LeakyReLU(True)" left anywhere
    slopes = [m.negative_slope for m in model.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert slopes and all(s < 0.5 for s in slopes)


def test_frame_size_not_divisible_by_downsample_is_a_user_error():
    with pytest.raises(UserError, match="divisible"):
        ModelConfig(frame_H=30, frame_W=64, downsample=4)


def test_nan_input_never_leaves_the_step():
    model = PoseVAE(tiny_model_config())
    prev = torch.rand(2, 3, 16, 32)
    prev[0, :, 3:5, 3:5] = float("nan")
    prev[1, 0, 0, 0] = float("inf")
    nxt = torch.full((2, 3, 16, 32), float("nan"))
    out = model(prev, torch.rand(2, 3, 16, 32), nxt)
    for t in (out.frame, out.mu, out.logvar):
        assert torch.isfinite(t).all()
    assert out.frame.min() >= 0 and out.frame.max() <= 1
    assert out.logvar.abs().max() <= 10


def test_huge_weights_give_finite_clamped_outputs():
    model = PoseVAE(tiny_model_config())
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1e6)
    x = torch.rand(2, 3, 16, 32)
    out = model(x, x, x)
    assert torch.isfinite(out.frame).all() and torch.isfinite(out.logvar).all()


def test_rollout_returns_n_frames_with_the_given_first_frame():
    model = PoseVAE(tiny_model_config())
    first = torch.rand(2, 3, 16, 32)
    poses = torch.rand(2, 7, 3, 16, 32)
    frames = generate(model, first, poses, noise_scale=0.5)
    assert frames.shape == (2, 7, 3, 16, 32)
    assert torch.equal(frames[:, 0], first)
    assert not torch.equal(frames[:, 1], frames[:, 2])


def test_rollout_feeds_back_its_own_prediction_unless_teacher_forced():
    model = PoseVAE(tiny_model_config()).eval()
    first = torch.rand(1, 3, 16, 32)
    poses = torch.rand(1, 4, 3, 16, 32)
    truth = torch.rand(1, 4, 3, 16, 32)
    seen = []
    model.frame_encoder.register_forward_hook(lambda m, inp, out: seen.append(inp[0].clone()))
    with torch.no_grad():
        free = rollout(model, first, poses, z_mode="mean")
        n_free = len(seen)
        rollout(model, first, poses, truth=truth, teacher_forcing=True, z_mode="mean")
    # free-running: the input at step t is the prediction of step t-1
    assert torch.equal(seen[1], free[:, 1])
    # teacher forcing: the input at step t is the true frame t-1
    assert torch.equal(seen[n_free + 1], truth[:, 1])


def test_noise_scale_zero_equals_z_mean_and_generation_is_seeded():
    model = PoseVAE(tiny_model_config())
    first, poses = torch.rand(1, 3, 16, 32), torch.rand(1, 5, 3, 16, 32)
    a = generate(model, first, poses, noise_scale=0.0)
    b = generate(model, first, poses, z_mode="mean")
    assert torch.allclose(a, b)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = generate(model, first, poses, generator=g1), generate(model, first, poses, generator=g2)
    assert torch.equal(a, b)


def test_generate_uses_eval_mode_and_restores_training_mode():
    model = PoseVAE(tiny_model_config()).train()
    bn = model.pose_encoder.net[2]
    before = bn.running_mean.clone()
    generate(model, torch.rand(2, 3, 16, 32), torch.rand(2, 3, 3, 16, 32))
    assert torch.equal(bn.running_mean, before)  # BatchNorm statistics untouched
    assert model.training
    with evaluating(model):
        assert not model.training


def test_logvar_bound_is_soft_so_a_runaway_variance_can_come_back():
    """A hard clamp at 10 passes no gradient: a logvar past it stayed there and its noise broke training."""
    from posevae.model.vae import _finite_gaussian

    raw = torch.tensor([-40.0, -3.0, 0.0, 3.0, 24.0], requires_grad=True)
    _, logvar = _finite_gaussian(torch.zeros(5), raw)
    assert logvar.abs().max() < 10 and logvar[2] == 0
    assert abs(logvar[3].item() - 3.0) < 0.1  # close to the identity where logvars live
    logvar.sum().backward()
    assert (raw.grad > 0).all()


def test_the_step_compiles_with_a_dynamic_batch():
    """torch.compile recompiles with a symbolic batch size when the batch changes (a last short batch, batch-1
    generation after training): the latent draw must trace then (torch.randn(..., generator=None) did not,
    on the H200 in the GPU check: 'SymIntArrayRef expected to contain only concrete integers')."""
    model = PoseVAE(tiny_model_config(16, 32))
    compiled = torch.compile(model, dynamic=True, backend="eager", fullgraph=True)
    for batch in (3, 5):
        x = torch.rand(3, batch, 3, 16, 32)
        torch.manual_seed(7)
        eager = model(x[0], x[1], x[2])
        torch.manual_seed(7)
        traced = compiled(x[0], x[1], x[2])
        torch.testing.assert_close(traced.frame, eager.frame)
        torch.manual_seed(7)
        eager_prior = model(x[0], x[1], noise_scale=0.5).frame
        torch.manual_seed(7)
        torch.testing.assert_close(compiled(x[0], x[1], noise_scale=0.5).frame, eager_prior)


def test_a_nan_pixel_becomes_mid_grey():
    """NaN never leaves the step: a NaN pixel becomes NAN_PIXEL (0.5, the lab's value), +Inf 1 and -Inf 0."""
    from posevae.model.vae import NAN_PIXEL

    for variant in ("posevae", "template"):
        overrides = {"variant": variant} if variant == "posevae" else {
            "variant": "template", "downsample": 1, "prev_frame_skip": False}
        model = PoseVAE(tiny_model_config(16, 32, **overrides))
        raw = torch.full((2, 3, 16, 32), float("nan"))
        raw[:, 0, 0, 0], raw[:, 1, 0, 0] = float("inf"), float("-inf")
        model._generate = lambda *args, raw=raw: raw  # a generator that has gone bad
        frame = model(torch.rand(2, 3, 16, 32), torch.rand(2, 3, 16, 32)).frame
        assert NAN_PIXEL == 0.5 and (frame[:, 2] == 0.5).all() and (frame[:, :, 1:] == 0.5).all(), variant
        assert (frame[:, 0, 0, 0] == 1).all() and (frame[:, 1, 0, 0] == 0).all(), variant


def test_one_default_noise_scale_for_forward_rollout_generate_and_the_config():
    """rollout() called directly used to draw unscaled noise (1.0) where generate() and the config use 0.5."""
    from posevae.config import DEFAULT_NOISE_SCALE, SampleConfig

    assert DEFAULT_NOISE_SCALE == SampleConfig().noise_scale == 0.5
    model = PoseVAE(tiny_model_config(16, 32))
    first, poses = torch.rand(2, 3, 16, 32), torch.rand(2, 4, 3, 16, 32)

    def frames(call, **kw):
        with evaluating(model), torch.inference_mode():
            return call(model, first, poses, generator=torch.Generator().manual_seed(4), **kw)

    default = frames(rollout)
    assert torch.equal(default, frames(rollout, noise_scale=0.5))
    assert torch.equal(default, frames(generate))
    assert not torch.equal(default, frames(rollout, noise_scale=1.0))
    with evaluating(model), torch.inference_mode():
        step = model(first, poses[:, 1], generator=torch.Generator().manual_seed(4)).frame
        assert torch.equal(step, model(first, poses[:, 1], noise_scale=0.5,
                                       generator=torch.Generator().manual_seed(4)).frame)


def test_the_previous_frame_is_encoded_without_a_graph():
    """The previous frame's features are detached (the lab's step), so they are computed under no_grad: the
    frame encoder records no graph for them, only for the next frame of the posterior path."""
    torch.manual_seed(0)
    model = PoseVAE(tiny_model_config())
    grad_modes: list[bool] = []
    model.frame_encoder.register_forward_hook(lambda *_: grad_modes.append(torch.is_grad_enabled()))
    x = torch.rand(2, 3, 16, 32)
    out = model(x, x, x)
    assert grad_modes == [False, True]  # previous frame, then the next frame (posterior)
    out.frame.mean().backward()
    assert all(p.grad is not None for p in model.frame_encoder.parameters())  # learns through the posterior
