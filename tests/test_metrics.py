import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posevae.metrics import (
    frame_and_person_psnr,
    person_box_mask,
    person_box_psnr,
    pose_region_mask,
    pose_region_psnr,
    psnr,
    ssim,
)


def test_psnr_is_per_frame_not_per_batch():
    target = torch.zeros(2, 3, 3, 8, 8)
    pred = target.clone()
    pred[0, 0] += 0.1  # MSE 0.01 -> 20 dB
    pred[1, 2] += 0.01  # MSE 1e-4 -> 40 dB
    got = psnr(pred, target)
    assert got.shape == (2, 3)
    assert got[0, 0].item() == pytest.approx(20.0, abs=1e-4)
    assert got[1, 2].item() == pytest.approx(40.0, abs=1e-3)
    assert got[0, 1].item() == pytest.approx(100.0)  # identical frames: capped at 100 dB


def test_psnr_matches_numpy_oracle():
    rng = np.random.default_rng(0)
    a, b = rng.random((4, 3, 16, 32)), rng.random((4, 3, 16, 32))
    expected = [10 * math.log10(1 / np.mean((x - y) ** 2)) for x, y in zip(a, b, strict=True)]
    got = psnr(torch.from_numpy(a), torch.from_numpy(b))
    assert got.tolist() == pytest.approx(expected, rel=1e-5)


def test_ssim_matches_scikit_image():
    skm = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(1)
    a = rng.random((2, 2, 3, 32, 64)).astype(np.float32)
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    got = ssim(torch.from_numpy(a), torch.from_numpy(b))
    assert got.shape == (2, 2)
    for i in range(2):
        for t in range(2):
            ref = skm.structural_similarity(a[i, t], b[i, t], gaussian_weights=True, sigma=1.5,
                                            use_sample_covariance=False, data_range=1.0, channel_axis=0)
            assert got[i, t].item() == pytest.approx(ref, abs=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), noise=st.floats(0.0, 0.5))
def test_psnr_ssim_symmetry_and_bounds(seed, noise):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(2, 3, 16, 16, generator=g)
    b = (a + noise * torch.randn(a.shape, generator=g)).clamp(0, 1)
    p_ab, p_ba = psnr(a, b), psnr(b, a)
    s_ab, s_ba = ssim(a, b), ssim(b, a)
    assert torch.allclose(p_ab, p_ba) and torch.allclose(s_ab, s_ba, atol=1e-6)
    assert (p_ab >= 0).all() and (p_ab <= 100).all()
    assert (s_ab <= 1 + 1e-6).all() and (s_ab >= -1 - 1e-6).all()
    assert torch.allclose(ssim(a, a), torch.ones(2), atol=1e-6)


# ------------------------------------------------------------------------------ person metrics, by hand

# A 6x8 label: pose pixels at (1, 1) (blue 6 of 255, just above the threshold) and (2, 2) (red); a grey
# pixel of 5 of 255 at (5, 7) is haze below the threshold.
LABEL = np.zeros((3, 6, 8), np.uint8)
LABEL[2, 1, 1] = 6
LABEL[0, 2, 2] = 255
LABEL[:, 5, 7] = 5
# (1, 1) and (2, 2) grown by one pixel each way (3x3), clipped at the top-left corner: 14 pixels
POSE_REGION = ["###.....",
               "####....",
               "####....",
               ".###....",
               "........",
               "........"]
# rows 1..2 and columns 1..2, padded by 2 -> -1..4, clipped to 0..4: 5 x 5 = 25 pixels
PERSON_BOX = ["#####...",
              "#####...",
              "#####...",
              "#####...",
              "#####...",
              "........"]


def grid(rows: list[str]) -> torch.Tensor:
    return torch.tensor([[c == "#" for c in row] for row in rows])


def frames_with_known_errors() -> tuple[torch.Tensor, torch.Tensor]:
    """Truth black; the prediction off by 0.1 in all channels at (0, 0), by 0.2 in channel 0 at (3, 3)
    (both inside region and box: squared errors 3 * 0.01 + 0.04 = 0.07) and by 0.5 at (5, 7) (outside)."""
    truth = torch.zeros(3, 6, 8)
    pred = truth.clone()
    pred[:, 0, 0] = 0.1
    pred[0, 3, 3] = 0.2
    pred[:, 5, 7] = 0.5
    return pred, truth


def test_pose_region_and_box_masks_by_hand():
    for labels in (torch.from_numpy(LABEL), torch.from_numpy(LABEL).float() / 255):  # uint8 or [0, 1]
        assert torch.equal(pose_region_mask(labels), grid(POSE_REGION))
        assert torch.equal(person_box_mask(labels), grid(PERSON_BOX))


def test_pose_region_and_box_psnr_by_hand():
    pred, truth = frames_with_known_errors()
    labels = torch.from_numpy(LABEL).float() / 255
    region_mse = 0.07 / (14 * 3)  # 14 pixels x 3 channels
    box_mse = 0.07 / (25 * 3)
    assert pose_region_psnr(pred, truth, labels).item() == pytest.approx(10 * math.log10(1 / region_mse),
                                                                        abs=1e-4)  # 27.78 dB
    assert person_box_psnr(pred, truth, labels).item() == pytest.approx(10 * math.log10(1 / box_mse),
                                                                       abs=1e-4)  # 30.30 dB
    whole_mse = (0.07 + 3 * 0.25) / (48 * 3)  # the error outside the person dominates the whole frame
    assert psnr(pred, truth).item() == pytest.approx(10 * math.log10(1 / whole_mse), abs=1e-4)
    scores = frame_and_person_psnr(pred, truth, labels)
    assert list(scores) == ["psnr", "psnr_pose", "psnr_box"]
    assert [v.item() for v in scores.values()] == pytest.approx(
        [10 * math.log10(1 / m) for m in (whole_mse, region_mse, box_mse)], abs=1e-4)


def test_a_label_covering_the_frame_gives_the_whole_frame_psnr():
    g = torch.Generator().manual_seed(0)
    pred, truth = torch.rand(2, 3, 6, 8, generator=g), torch.rand(2, 3, 6, 8, generator=g)
    white = torch.ones(2, 3, 6, 8)
    torch.testing.assert_close(pose_region_psnr(pred, truth, white), psnr(pred, truth))
    torch.testing.assert_close(person_box_psnr(pred, truth, white), psnr(pred, truth))


def test_empty_label_is_nan_and_a_perfect_prediction_is_capped_like_psnr():
    pred, truth = frames_with_known_errors()
    black = torch.zeros(3, 6, 8)
    black[:, 0, 0] = 5 / 255  # haze only: still no pose pixel
    assert math.isnan(pose_region_psnr(pred, truth, black).item())
    assert math.isnan(person_box_psnr(pred, truth, black).item())
    labels = torch.from_numpy(LABEL)
    assert pose_region_psnr(truth, truth, labels).item() == pytest.approx(100.0) == psnr(truth, truth).item()
    assert person_box_psnr(truth, truth, labels).item() == pytest.approx(100.0)


def test_person_metrics_are_per_frame_over_batches_and_labels_broadcast():
    g = torch.Generator().manual_seed(1)
    truth = torch.rand(4, 3, 6, 8, generator=g)
    pred = (truth[None] + 0.1 * torch.randn(2, 4, 3, 6, 8, generator=g)).clamp(0, 1)  # 2 samples x 4 frames
    labels = torch.zeros(4, 3, 6, 8)
    labels[0] = torch.from_numpy(LABEL).float() / 255
    labels[1, 1, 4, 6] = 1.0
    labels[3, :, 2:4, 3:5] = 0.5  # frame 2 has an empty label
    for metric in (pose_region_psnr, person_box_psnr):
        got = metric(pred, truth, labels)  # labels (4, ...) broadcast over the 2 samples
        assert got.shape == (2, 4)
        assert torch.isnan(got[:, 2]).all() and torch.isfinite(got[:, [0, 1, 3]]).all()
        for s in range(2):
            for t in range(4):
                one = metric(pred[s, t], truth[t], labels[t])
                assert one.shape == () and torch.allclose(got[s, t], one, equal_nan=True)
        full = metric(pred, truth.expand_as(pred), labels.expand_as(pred))  # labels given per sample
        assert torch.allclose(full, got, equal_nan=True)
