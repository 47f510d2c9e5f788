"""The CUDA-graph rollout step gives the eager rollout's numbers: its plumbing (static inputs copied in,
outputs overwritten by each replay, noise drawn outside) checked on the CPU with a stand-in capture that
replays like a graph, and the real capture on a GPU where there is one."""

import pytest
import torch

import posevae.model.cuda_graph as cuda_graph_module
from posevae.model.rollout import rollout
from posevae.model.vae import PoseVAE
from tests.conftest import tiny_model_config


def replaying_capture(step):
    """Like a CUDA graph: one set of output tensors, overwritten in place by every replay."""
    outputs = step()

    def replay():
        for static, new in zip(outputs, step(), strict=True):
            if static is not None:
                static.copy_(new)

    return replay, outputs


@pytest.fixture
def graphs_on_cpu(monkeypatch):
    monkeypatch.setattr(cuda_graph_module, "cuda_graph", replaying_capture)
    monkeypatch.setattr("posevae.model.rollout.can_graph", lambda model, first, autocast: True)


def rollouts(model, **kwargs):
    """The same rollout with and without the graphed step."""
    frames = torch.rand(3, 7, 3, 16, 32, generator=torch.Generator().manual_seed(0))
    poses = torch.rand(3, 7, 3, 16, 32, generator=torch.Generator().manual_seed(1))
    runs = []
    for graphs in (False, True):
        seen = []
        generators = [torch.Generator().manual_seed(10 + row) for row in range(3)]
        with torch.inference_mode():
            out = rollout(model, frames[:, 0], poses, truth=frames, generator=generators, cuda_graphs=graphs,
                          on_step=lambda t, step, seen=seen: seen.append(step.frame.clone()), **kwargs)
        runs.append((out, seen))
    return runs


@pytest.mark.parametrize("prior", ["fixed", "learned"])
@pytest.mark.parametrize("kwargs", [{}, {"z_mode": "mean"}, {"noise_scale": 1.0},
                                    {"use_posterior": torch.tensor([False, True, False])}],
                         ids=["sample", "mean", "scale-1", "posterior-rows"])
def test_the_graphed_step_gives_the_eager_rollout(graphs_on_cpu, prior, kwargs):
    model = PoseVAE(tiny_model_config(prior=prior)).eval()
    (eager, eager_steps), (graphed, graphed_steps) = rollouts(model, **kwargs)
    assert torch.equal(eager, graphed)
    assert len(eager_steps) == len(graphed_steps) == 6
    assert all(torch.equal(a, b) for a, b in zip(eager_steps, graphed_steps, strict=True))
    assert not torch.equal(graphed[:, 1], graphed[:, 2])  # every frame its own, not the last replay's


def test_a_failed_capture_warns_and_generates_eagerly(monkeypatch):
    def failing(step):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(cuda_graph_module, "cuda_graph", failing)
    monkeypatch.setattr("posevae.model.rollout.can_graph", lambda model, first, autocast: True)
    model = PoseVAE(tiny_model_config()).eval()
    with pytest.warns(RuntimeWarning, match="CUDA graph capture of the rollout step failed"):
        (eager, _), (fallback, _) = rollouts(model)
    assert torch.equal(eager, fallback)


def test_only_a_gradient_free_rollout_on_cuda_without_autocast_is_graphed():
    model = PoseVAE(tiny_model_config())
    cpu_frame = torch.zeros(1, 3, 16, 32)
    with torch.no_grad():
        assert not cuda_graph_module.can_graph(model, cpu_frame, None)  # not on CUDA
    meta = torch.zeros(1, 3, 16, 32, device="meta")
    assert not cuda_graph_module.can_graph(model, meta, None)
    if torch.cuda.is_available():
        frame = torch.zeros(1, 3, 16, 32, device="cuda")
        model = model.cuda()
        with torch.no_grad():
            assert not cuda_graph_module.can_graph(model.train(), frame, None)  # training mode
            assert cuda_graph_module.can_graph(model.eval(), frame, None)
            assert not cuda_graph_module.can_graph(model, frame, lambda: None)  # autocast
        assert not cuda_graph_module.can_graph(model, frame, None)  # gradient on


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kwargs", [{}, {"use_posterior": torch.tensor([False, True, False])}])
def test_a_real_cuda_graph_gives_the_eager_rollout(kwargs):
    model = PoseVAE(tiny_model_config()).cuda().eval()
    kwargs = {k: v.cuda() for k, v in kwargs.items()}
    frames = torch.rand(3, 9, 3, 16, 32, device="cuda")
    poses = torch.rand(3, 9, 3, 16, 32, device="cuda")
    runs = []
    for graphs in (False, True):
        generators = [torch.Generator("cuda").manual_seed(10 + row) for row in range(3)]
        with torch.inference_mode():
            runs.append(rollout(model, frames[:, 0], poses, truth=frames, generator=generators,
                                cuda_graphs=graphs, **kwargs))
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-5, atol=1e-5)
