import pytest
import torch

from posevae.config import MODEL_PRESETS, ModelConfig

# Tiny test models are dominated by per-op overhead: one thread is several times faster than two.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield


def tiny_model_config(frame_H: int = 16, frame_W: int = 32, **overrides) -> ModelConfig:
    """A few thousand parameters: fast enough for CPU tests."""
    return ModelConfig(frame_H=frame_H, frame_W=frame_W, **{**MODEL_PRESETS["tiny"], **overrides})


def ctrl_c_at_epoch(monkeypatch, epoch: int):
    """Make training raise KeyboardInterrupt (a user's Ctrl-C) when ``epoch`` (0-based) starts.

    Returns the real teacher_forcing_ratio, so a test can put it back before resuming.
    """
    import posevae.training.loop as train_module

    real_tfr = train_module.teacher_forcing_ratio

    def interrupting(e, *args):
        if e == epoch:
            raise KeyboardInterrupt
        return real_tfr(e, *args)

    monkeypatch.setattr(train_module, "teacher_forcing_ratio", interrupting)
    return real_tfr
