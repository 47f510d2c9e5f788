"""One rollout step captured in a CUDA graph, replayed for every step of a generation on a GPU.

A rollout step of the small models here is a few hundred kernels of microseconds each: on a GPU the step
waits for Python and kernel launches, not for arithmetic. A CUDA graph records the step's kernels once and
replays them with one launch (PyTorch, "CUDA Graphs" in the CUDA semantics notes). The rules it brings:

* fixed shapes and addresses: the step reads its inputs from static tensors, which each call fills with
  ``copy_``, and writes its outputs to the same static tensors each replay (the caller copies what it keeps);
* no random numbers drawn inside: the latent's noise is drawn outside, with the rollout's own generators, and
  given as an input (the same numbers an eager step draws);
* Python scalars (noise scale, z mode) are frozen at capture, so a graph serves one rollout;
* no gradient, no autocast and eval mode (validation and testing run so): other rollouts, such as the
  training step's rollout without teacher forcing, stay eager, as does everything off CUDA.

The capture runs three warm-up steps on a side stream first (lazy cuDNN set-up stays out of the graph). A
capture that fails falls back to eager steps with one warning, so generation never depends on it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from posevae.model.vae import StepOutput

StepInputs = dict[str, torch.Tensor | None]  # prev_frame, next_pose, next_frame, noise (None: not used)
WARM_UP_STEPS = 3


def can_graph(model: Any, first_frame: torch.Tensor, autocast: Any) -> bool:
    """Whether a rollout may capture its step: a plain module in eval mode on CUDA (the warm-up steps must
    change nothing), without gradient or autocast."""
    return (first_frame.device.type == "cuda" and autocast is None and not torch.is_grad_enabled()
            and isinstance(model, torch.nn.Module) and not model.training and hasattr(model, "latent_shape"))


class GraphedStep:
    """``model(**inputs, **options)`` captured once; each call copies new inputs in and replays.

    ``capture`` turns a no-argument function into its replay (real: a CUDA graph, see :func:`cuda_graph`);
    the outputs it returns are the static tensors each replay overwrites.
    """

    def __init__(self, model: Callable[..., StepOutput], inputs: StepInputs, options: dict[str, Any],
                 capture: Callable[[Callable[[], StepOutput]], tuple[Callable[[], None], StepOutput]]):
        self.static = {name: None if x is None else x.clone() for name, x in inputs.items()}
        self.replay, self.outputs = capture(lambda: model(**self.static, **options))

    def __call__(self, inputs: StepInputs) -> StepOutput:
        for name, x in inputs.items():
            static = self.static[name]
            if (x is None) != (static is None):
                raise ValueError(f"graphed step: input {name} was {'absent' if static is None else 'given'} "
                                 "at capture")
            if x is not None and static is not None:
                static.copy_(x)
        self.replay()
        return self.outputs


def cuda_graph(step: Callable[[], StepOutput]) -> tuple[Callable[[], None], StepOutput]:
    """Capture ``step`` in a CUDA graph after warm-up on a side stream; returns (replay, static outputs)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(WARM_UP_STEPS):
            step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = step()
    return graph.replay, outputs


def graphed_or_eager(model: Callable[..., StepOutput], inputs: StepInputs,
                     options: dict[str, Any]) -> Callable[[StepInputs], StepOutput] | None:
    """The captured step, or None (with a warning) when the capture fails: the rollout then runs eagerly."""
    try:
        return GraphedStep(model, inputs, options, cuda_graph)
    except RuntimeError as error:
        warnings.warn(f"CUDA graph capture of the rollout step failed ({error}); generating without it "
                      "(slower, the same numbers).", RuntimeWarning, stacklevel=3)
        return None
