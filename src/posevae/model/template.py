"""What the ``template`` model variant keeps of the course template, and how its parameter names map to ours.

The course hands out a template (``modules/layers.py``, ``modules/modules.py``, ``Trainer.py``, ``Tester.py``)
whose ``VAE_Model`` holds five parts named ``frame_transformation`` (RGB_Encoder), ``label_transformation``
(Label_Encoder), ``Gaussian_Predictor``, ``Decoder_Fusion`` and ``Generator``. Read from public student
copies of the template (reference only, no code copied): shflte/NYCU_DLP_2024_summer
``lab4/modules/layers.py``, ``lab4/modules/modules.py``, ``lab4/Tester.py``,
and several other copies of the same files found by code search (identical layer lists).

What the template does that the ``posevae`` variant does not (:class:`posevae.model.vae.PoseVAE` switches on
``ModelConfig.variant``):

* ``nn.LeakyReLU(True)`` (negative slope True = 1.0, an identity) after the pose encoder's BatchNorm and
  before the Gaussian predictor's last 1x1 convolution; every other activation has the slope ours has
  (residual blocks 0.01, depthwise blocks 0.01, the gated feed-forward 0.1).
* The Generator ends with its 1x1 convolution: no sigmoid and no clamp; the raw output is the next step's
  previous frame (students' filled-in test code feeds it back as it is).
* ``Gaussian_Predictor.reparameterize``: ``mu + exp(0.5 * logvar) * eps``, logvar unbounded.
* ``Tester.py``'s ``Test_model.eval`` overrides ``nn.Module.eval``, so the template generates with the model
  still in training mode: the pose encoder's BatchNorm normalises each pose image (batch of 1) by its own
  statistics, never by the running ones. :class:`TemplateBatchNorm2d` does that in eval mode, per batch row.
* At test time z ~ N(0, I) (``torch.randn(1, N_dim, H, W)``): :data:`TEMPLATE_NOISE_SCALE`.

Parameter names: the template's ``DepthConvBlock`` wraps ``DepthConv`` (``conv1.0``, ``depth_conv``,
``conv2``, ``adaptor``) and ``ConvFFN`` (``conv``, ``conv_out``) in ``block``; ours are ``pointwise_in.0``,
``depthwise``, ``pointwise_out``, ``skip`` and ``expand``, ``project``. Residual blocks (``conv1``, ``conv2``,
``skip``) agree. :func:`template_key` gives the template's name of each of our parameters.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from posevae.model.layers import StepBatchNorm2d

TEMPLATE_SLOPE = 1.0  # nn.LeakyReLU(True): the first positional argument is negative_slope, True == 1.0
TEMPLATE_NOISE_SCALE = 1.0  # the template's test code draws z ~ N(0, I)

# our part -> the template's attribute of VAE_Model
TEMPLATE_PARTS = {
    "frame_encoder.net": "frame_transformation",
    "pose_encoder.net": "label_transformation",
    "posterior.net": "Gaussian_Predictor",
    "fusion.net": "Decoder_Fusion",
}
# inside a depthwise block (ours -> the template's), the path before the parameter's own name
TEMPLATE_BLOCK_NAMES = {
    ("0", "pointwise_in", "0"): ("block", "0", "conv1", "0"),
    ("0", "depthwise"): ("block", "0", "depth_conv"),
    ("0", "pointwise_out"): ("block", "0", "conv2"),
    ("0", "skip"): ("block", "0", "adaptor"),
    ("1", "expand"): ("block", "1", "conv"),
    ("1", "project"): ("block", "1", "conv_out"),
}
GENERATOR_HEAD = 6  # the template's Generator is one Sequential: 3 x (DCB, Res), then DCB (6), Conv1x1 (7)


class TemplateBatchNorm2d(StepBatchNorm2d):
    """BatchNorm as the template uses it: batch statistics in training (per time step in the batched step, as
    :class:`~posevae.model.layers.StepBatchNorm2d`); each sample's own in eval mode.

    The template never leaves training mode and generates one sequence at a time, so at test time its
    BatchNorm sees a batch of one pose image and normalises it by that image's per-channel mean and
    (biased) variance. In eval mode this layer does the same for every batch row separately, so batching
    sequences together changes nothing. Same parameters and buffers as ``nn.BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


def _split_part(key: str) -> tuple[str, list[str]]:
    """'frame_encoder.net.1.0.depthwise.weight' -> ('frame_encoder.net', ['1', '0', 'depthwise', 'weight'])"""
    parts = key.split(".")
    return ".".join(parts[:2]), parts[2:]


def _template_layer(path: list[str]) -> list[str]:
    """Our path inside one layer of a part (without the parameter's name) -> the template's."""
    for ours, theirs in TEMPLATE_BLOCK_NAMES.items():
        if tuple(path[:len(ours)]) == ours:
            return [*theirs, *path[len(ours):]]
    return path


def template_key(key: str) -> str:
    """The template's state-dict name of one of our parameters (model variant ``template``).

    'frame_encoder.net.1.0.depthwise.weight' -> 'frame_transformation.1.block.0.depth_conv.weight';
    'generator.stages.2.1.conv1.bias' -> 'Generator.5.conv1.bias';
    'generator.head.1.weight' -> 'Generator.7.weight'.
    """
    part, rest = _split_part(key)
    if part in TEMPLATE_PARTS:
        name, index, inner = TEMPLATE_PARTS[part], rest[0], rest[1:]
    elif part == "generator.stages":
        name, index, inner = "Generator", str(2 * int(rest[0]) + int(rest[1])), rest[2:]
    elif part == "generator.head":
        name, index, inner = "Generator", str(GENERATOR_HEAD + int(rest[0])), rest[1:]
    else:
        raise ValueError(f"{key} has no counterpart in the course template's model")
    return ".".join([name, index, *_template_layer(inner[:-1]), inner[-1]])
