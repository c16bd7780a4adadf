"""The logger's call-time checks (evalstream._points) and how a refusal describes itself."""

from __future__ import annotations

import math

import pytest
from evalstream._points import MAX_STEP, floats_list, steps_list
from evalstream.errors import InvalidPoint, PointsRefused, Refusal


def test_steps_list_takes_ints_and_integral_floats() -> None:
    assert steps_list([0, 5, MAX_STEP]) == [0, 5, MAX_STEP]
    assert steps_list((0, 1.0, 7)) == [0, 1, 7]
    assert steps_list(range(3)) == [0, 1, 2]
    assert steps_list([]) == []


@pytest.mark.parametrize(
    ("steps", "index", "shown"),
    [
        ([0, 1, -1, 3], 2, "steps[2] = -1"),
        ([0, 2**63], 1, f"steps[1] = {2**63}"),
        ([0.5], 0, "steps[0] = 0.5"),
        ([0, math.nan], 1, "steps[1] = nan"),
        ([0, "3"], 1, "steps[1] = '3'"),
        ([False], 0, "steps[0] = False"),
    ],
)
def test_steps_list_names_the_bad_index_and_value(steps, index, shown) -> None:
    with pytest.raises(InvalidPoint) as info:
        steps_list(steps)
    assert info.value.index == index
    assert shown in str(info.value)


def test_floats_list_keeps_nan_and_infinities() -> None:
    out = floats_list([1, 2.5, math.inf, -math.inf, math.nan])
    assert out[:4] == [1.0, 2.5, math.inf, -math.inf] and math.isnan(out[4])
    assert all(type(v) is float for v in out)


@pytest.mark.parametrize(
    ("values", "index"),
    [([1.0, "2.0"], 1), ([None], 0), ([1.0, True], 1), ([10**400], 0), ([b"1"], 0)],
)
def test_floats_list_refuses_what_is_not_a_number(values, index) -> None:
    with pytest.raises(InvalidPoint) as info:
        floats_list(values)
    assert info.value.index == index
    assert f"values[{index}]" in str(info.value)


def test_a_refusal_names_its_steps_and_the_server_reason() -> None:
    whole = Refusal(
        3, "steps: 50 points, at most 10 per chunk", "steps", "train", "loss", (4, 5, 9)
    )
    assert whole.refused_step is None
    assert whole.describe() == (
        "train/loss: 3 points refused (steps 4 to 9): steps: 50 points, at most 10 per chunk"
    )
    one = Refusal(4, "steps[1]: step -2 is negative", "steps[1]", "validation", "loss", (7, -2))
    assert one.refused_step == -2
    assert "(step -2)" in one.describe()
    error = PointsRefused((whole, one))
    assert error.refusals == (whole, one)
    assert str(error).startswith("POINTS_REFUSED: the server refused 5 logged points in 2 chunks")
