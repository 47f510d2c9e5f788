import json
import re
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posevae.schedules import kl_beta, teacher_forcing_ratio

# The values of the course's definitions (docs/course.md, "Schedules"), rounded to 6 decimals.
REFERENCE = Path(__file__).resolve().parent / "reference" / "schedules.json"
SCHEDULES = json.loads(REFERENCE.read_text())


@pytest.mark.parametrize("name", [k for k in SCHEDULES if not k.startswith("teacher")])
def test_kl_beta_equals_reference(name):
    kind, cycle, ratio = re.match(r"(\w+?)_num_epoch\d+_cycle(\d+)_ratio([\d.]+)", name).groups()
    num_epoch = int(re.search(r"num_epoch(\d+)", name).group(1))
    got = [round(kl_beta(e, kind, num_epoch, int(cycle), float(ratio)), 6) for e in range(num_epoch)]
    assert got == SCHEDULES[name]


def test_teacher_forcing_equals_reference():
    expected = SCHEDULES["teacher_forcing_ratio_tfr1.0_sde10_step0.1_epochs0to29"]
    assert [round(teacher_forcing_ratio(e, 1.0, 10, 0.1), 6) for e in range(30)] == expected


def test_known_values_without_the_reference_file():
    assert [round(kl_beta(e, "Cyclical", 70, 10, 0.5), 6) for e in range(8)] == [
        0.0, 0.285714, 0.571429, 0.857143, 1.0, 1.0, 1.0, 0.0]
    assert kl_beta(7, "Monotonic", 70, 10, 0.5) == 1.0
    assert kl_beta(3, "None", 70) == 1.0
    assert teacher_forcing_ratio(9) == 1.0 and teacher_forcing_ratio(10) == pytest.approx(0.9)
    assert teacher_forcing_ratio(25) == 0.0


def test_fu_cyclical_reference_ramp():
    # frange_cycle_linear(10, n_cycle=2, ratio=0.5): period 5, step 0.4 -> 0, .4, .8, 1, 1 per cycle
    assert [round(kl_beta(e, "FuCyclical", 10, 2, 0.5), 6) for e in range(10)] == [
        0.0, 0.4, 0.8, 1.0, 1.0, 0.0, 0.4, 0.8, 1.0, 1.0]


@settings(max_examples=60, deadline=None)
@given(num_epoch=st.integers(1, 300), cycle=st.integers(1, 20), ratio=st.floats(0.05, 1.0),
       kind=st.sampled_from(["Cyclical", "Monotonic", "None", "FuCyclical"]))
def test_beta_is_within_unit_interval(num_epoch, cycle, ratio, kind):
    betas = [kl_beta(e, kind, num_epoch, cycle, ratio) for e in range(num_epoch + 3)]
    assert all(0.0 <= b <= 1.0 for b in betas)
    if kind == "Monotonic":
        assert betas == sorted(betas)
    if kind == "Cyclical" and num_epoch % cycle == 0 and num_epoch // cycle >= 2:
        period = num_epoch // cycle
        assert betas[: num_epoch - period] == betas[period:num_epoch]


@settings(max_examples=60, deadline=None)
@given(tfr=st.floats(0, 1), sde=st.integers(0, 30), step=st.floats(0, 1))
def test_teacher_forcing_is_non_increasing_and_floored(tfr, sde, step):
    ratios = [teacher_forcing_ratio(e, tfr, sde, step) for e in range(60)]
    assert all(0.0 <= r <= 1.0 for r in ratios)
    assert all(a >= b for a, b in pairwise(ratios))
