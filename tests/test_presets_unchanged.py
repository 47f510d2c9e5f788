"""The existing presets build exactly the model they built before the sharp preset was added.

tests/reference/presets_before_sharp.json was computed once from the code before that change (git 697e7a6):
parameter count, state-dict keys and shapes, seeded-initialisation sums and one step's output. The lab preset
must stay the course model; fast and tiny must load their old checkpoints and give the same numbers.
"""

import json
from pathlib import Path

import pytest
import torch

from posevae.config import MODEL_PRESETS, ModelConfig
from posevae.model.vae import PoseVAE, count_parameters

REFERENCE_FILE = Path(__file__).parent / "reference" / "presets_before_sharp.json"
REFERENCE = json.loads(REFERENCE_FILE.read_text())["presets"]


@pytest.mark.parametrize("preset", ["lab", "fast", "tiny"])
def test_existing_presets_build_the_same_model_as_before(preset):
    ref = REFERENCE[preset]
    torch.manual_seed(0)
    model = PoseVAE(ModelConfig(**MODEL_PRESETS[preset]))
    assert count_parameters(model) == ref["parameters"]
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == ref["state_dict"]
    # the same initial weights: no new module draws from the RNG before (or between) the old ones
    total = sum(p.double().sum().item() for p in model.parameters())
    assert total == pytest.approx(ref["init_sum"], rel=1e-9)
    total_abs = sum(p.double().abs().sum().item() for p in model.parameters())
    assert total_abs == pytest.approx(ref["init_abs_sum"], rel=1e-9)
    x = torch.rand(3, 2, 3, 32, 64, generator=torch.Generator().manual_seed(1))  # (prev, pose, next), B 2
    model.eval()
    with torch.no_grad():
        torch.manual_seed(5)
        out = model(x[0], x[1], x[2])
    assert out.frame.double().sum().item() == pytest.approx(ref["frame_sum"], rel=1e-5)
    assert out.mu.double().sum().item() == pytest.approx(ref["mu_sum"], rel=1e-4, abs=1e-3)
