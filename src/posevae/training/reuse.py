"""Train, resume or reuse the run of a config: the one way the jobs (``posevae demo``, ``posevae compare``)
get a finished run, so that running a job again continues where it stopped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from posevae.config import RunConfig
from posevae.errors import UserError
from posevae.model.checkpoint import read_checkpoint_info
from posevae.run_folder import RunFolder
from posevae.training.loop import train
from posevae.training.setup import config_changes

Outcome = Literal["trained", "resumed", "done"]


def train_or_reuse(cfg: RunConfig, *, progress: bool = True,
                   announce: Callable[[Outcome], None] | None = None) -> Outcome:
    """Get the finished run of ``cfg`` in ``cfg.train.save_root``: train it when the folder holds no run
    ("trained"), resume it when it was interrupted ("resumed"), reuse it when it has finished ("done").

    A run there of another config (in anything but RESUMABLE_CHANGES) is refused with one UserError naming
    the difference. ``announce`` is told what the call will return before any training starts. The stored
    config and epoch are read from the last checkpoint's metadata, never its tensors.
    """
    run = RunFolder(cfg.train.save_root)
    outcome: Outcome = "trained"
    if run.last.exists():
        try:
            stored = read_checkpoint_info(run.last)
        except UserError as err:
            raise UserError(f"{err} Or delete {run.root} to train that run again.") from None
        finished = stored.train_state["epoch"] + 1 >= stored.config.train.num_epoch
        diff = config_changes(stored.config, cfg)
        if diff:
            state, fix = (("a finished", "use another --out, or delete that run folder to retrain it")
                          if finished else
                          ("an interrupted", "run the command again with the options it was started with to "
                           "resume it, use another --out, or delete that run folder to start again"))
            raise UserError(f"{run.root} holds {state} run of another config ({'; '.join(diff)}; stored != "
                            f"requested): {fix}.")
        outcome = "done" if finished else "resumed"
    if announce is not None:
        announce(outcome)
    if outcome != "done":
        train(cfg, resume=outcome == "resumed", progress=progress)
    return outcome
