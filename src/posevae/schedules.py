"""Training schedules as pure functions of the epoch (docs/course.md; values: tests/reference/schedules.json).

KL annealing (the seed's definitions, after Fu et al. 2019, "Cyclical Annealing Schedule"):
  Cyclical   period = num_epoch / cycles; tau = (epoch mod ceil(period)) / period;
             beta = tau / ratio if tau <= ratio else 1.
  Monotonic  beta = min(1, epoch / period).
  None       beta = 1.
  FuCyclical the reference implementation of Fu et al. (``frange_cycle_linear``): a list of
             num_epoch values, ones everywhere, ramped linearly from 0 in steps of 1 / (period * ratio)
             at the start of each cycle.
Beyond num_epoch every schedule gives 1.

Teacher forcing: ratio ``tfr`` for epochs before ``tfr_sde``; from epoch ``tfr_sde`` on it falls by
``tfr_d_step`` per epoch (the first decrease at epoch tfr_sde itself), floored at 0.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal, get_args

KLAnnealType = Literal["Cyclical", "Monotonic", "None", "FuCyclical"]
KL_ANNEAL_TYPES: tuple[KLAnnealType, ...] = get_args(KLAnnealType)  # option choices and messages use these


def kl_beta(epoch: int, kind: str, num_epoch: int, cycles: int = 10, ratio: float = 0.5) -> float:
    """KL weight beta for ``epoch`` (0-based) under the named annealing schedule."""
    if kind == "None" or epoch >= num_epoch:
        return 1.0
    period = num_epoch / cycles
    if kind == "Cyclical":
        tau = (epoch % math.ceil(period)) / period
        return tau / ratio if tau <= ratio else 1.0
    if kind == "Monotonic":
        return min(1.0, epoch / period)
    if kind == "FuCyclical":
        return _fu_cyclical(num_epoch, cycles, ratio)[epoch]
    raise ValueError(f"unknown KL annealing {kind!r}; use one of {', '.join(KL_ANNEAL_TYPES)}")


@lru_cache(maxsize=32)
def _fu_cyclical(n_iter: int, n_cycle: int, ratio: float, start: float = 0.0,
                 stop: float = 1.0) -> tuple[float, ...]:
    values = [stop] * n_iter
    period = n_iter / n_cycle
    step = (stop - start) / (period * ratio)
    for c in range(n_cycle):
        v, i = start, 0
        while v <= stop and int(i + c * period) < n_iter:
            values[int(i + c * period)] = v
            v += step
            i += 1
    return tuple(values)


def trains_kl(kind: str, num_epoch: int, cycles: int, ratio: float) -> bool:
    """Whether the schedule gives beta > 0 in at least one of the run's epochs (else the KL is never
    trained)."""
    return any(kl_beta(e, kind, num_epoch, cycles, ratio) > 0 for e in range(num_epoch))


def fitted_kl_cycles(kind: str, num_epoch: int, cycles: int, ratio: float) -> int | None:
    """The most cycles, at most ``cycles`` and at most num_epoch / 2, with which the schedule trains the KL.

    None when no number of cycles does (a 1-epoch run: every cyclical schedule starts a cycle at beta = 0).
    """
    for c in range(min(cycles, num_epoch // 2), 0, -1):
        if trains_kl(kind, num_epoch, c, ratio):
            return c
    return None


def teacher_forcing_ratio(epoch: int, tfr: float = 1.0, tfr_sde: int = 10, tfr_d_step: float = 0.1) -> float:
    """Probability of teacher forcing in ``epoch`` (0-based)."""
    if epoch < tfr_sde:
        return tfr
    return max(0.0, tfr - tfr_d_step * (epoch - tfr_sde + 1))
