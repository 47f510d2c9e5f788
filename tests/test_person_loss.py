"""The person loss (--person_weight): the MSE over the pose region of each frame's own label."""

import pytest
import torch

from posevae.config import TrainConfig
from posevae.errors import UserError
from posevae.losses import person_region_mse
from posevae.model.vae import PoseVAE
from posevae.training.step import train_clip
from tests.conftest import tiny_model_config
from tests.test_train_step import moving_square_clip


def test_person_region_mse_against_a_hand_computation():
    """One lit label pixel at (2, 3) of a 6x6 frame: dilated by 1 px it covers rows 1..3, cols 2..4 (9
    pixels, 27 values). The prediction is off by 0.5 in one channel at (2, 3) and by 0.2 in every channel
    at (0, 0), outside the region."""
    labels = torch.zeros(1, 3, 6, 6)
    labels[0, 1, 2, 3] = 1.0
    target = torch.zeros(1, 3, 6, 6)
    pred = target.clone()
    pred[0, 0, 2, 3] = 0.5
    pred[0, :, 0, 0] = 0.2
    assert person_region_mse(pred, target, labels).item() == pytest.approx(0.25 / 27)


def test_person_region_mse_pools_the_batch_and_is_zero_without_a_pose():
    labels = torch.zeros(2, 3, 6, 6)
    labels[0, 0, 0, 0] = 1.0  # a corner: the region is 2x2 = 4 pixels
    target, pred = torch.zeros(2, 3, 6, 6), torch.full((2, 3, 6, 6), 0.1)
    assert person_region_mse(pred, target, labels).item() == pytest.approx(0.01)  # only frame 0's 4 pixels
    assert person_region_mse(pred, target, torch.zeros_like(labels)).item() == 0.0


def test_person_weight_moves_the_gradient_to_the_pose_region():
    """With a large person weight the pose region's error falls faster than with the plain MSE."""
    frames, poses = moving_square_clip(T=4)
    region_err = {}
    for weight in (0.0, 20.0):
        torch.manual_seed(0)
        model = PoseVAE(tiny_model_config(16, 32))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(30):
            optimizer.zero_grad()
            train_clip(model, frames, poses, beta=0.0, teacher_forcing=True, person_weight=weight)
            optimizer.step()
        model.eval()
        with torch.no_grad():
            out = model(frames[:, 0], poses[:, 1], frames[:, 1])
        region_err[weight] = person_region_mse(out.frame, frames[:, 1], poses[:, 1]).item()
    assert region_err[20.0] < region_err[0.0]


def test_a_negative_person_weight_is_refused():
    with pytest.raises(UserError, match="--person_weight must be >= 0"):
        TrainConfig(person_weight=-1.0)
