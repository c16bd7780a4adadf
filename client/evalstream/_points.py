"""The checks `Run.log`, `Run.log_many` and `evalstream runs import` make before sending.

They refuse at the call what the server would refuse in the background (the
checks of ``Runs.StreamLoss`` and of the store): a step that is not an integer
in [0, 2**63), a value that is not a number, an unknown split, a series name
over 128 characters. NaN and infinities are numbers: the store keeps them as
sent. Limits that only the server knows (points per chunk, the run's existence)
are left to it.

Whole lists are checked at C speed (``set(map(type, ...))``, ``min``, ``max``);
the per-point loop that finds the bad index runs only when something is wrong.

Example:
    >>> steps_list([0, 1, 2.0])
    [0, 1, 2]
    >>> steps_list([0, -1])
    Traceback (most recent call last):
    ...
    evalstream.errors.InvalidPoint: INVALID_ARGUMENT: steps[1] = -1: a step must be >= 0 ...
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

from evalstream._run_types import SPLITS
from evalstream.errors import InvalidPoint

#: The largest step the store holds (int64).
MAX_STEP = 2**63 - 1
#: The longest series name the server accepts, in characters.
MAX_SERIES = 128


def check_split(split: str) -> Any:
    """The Split enum of a split's name; InvalidPoint naming the valid ones otherwise."""
    try:
        return SPLITS[split]
    except (KeyError, TypeError):
        raise InvalidPoint(
            f"split {split!r} is not one of {', '.join(SPLITS)}", field="split", value=split
        ) from None


def check_series(name: str, *, field: str = "series") -> str:
    """A series name the server accepts (a string of at most 128 characters)."""
    if not isinstance(name, str) or len(name) > MAX_SERIES:
        shown = f"{name!r:.60}" + ("..." if isinstance(name, str) and len(name) > 50 else "")
        raise InvalidPoint(
            f"{field} {shown} is not a series name: a string of at most {MAX_SERIES} characters",
            field=field,
            value=name,
        )
    return name


def check_step(step: Any, *, field: str = "step", index: int | None = None) -> int:
    """A step as an int: an integer (or an integral float) in [0, 2**63)."""
    if type(step) is int:
        value = step
    else:
        try:
            if isinstance(step, bool):
                raise TypeError
            value = operator.index(step)  # int subclasses, numpy integers
        except TypeError:
            if isinstance(step, float) and step.is_integer():
                value = int(step)
            else:
                raise InvalidPoint(
                    f"{field} = {step!r:.60}: a step must be an integer (the optimizer step), "
                    f"not {type(step).__name__}",
                    field=field,
                    index=index,
                    value=step,
                ) from None
    if not 0 <= value <= MAX_STEP:
        raise InvalidPoint(
            f"{field} = {value}: a step must be >= 0 and < 2**63 (the optimizer step)",
            field=field,
            index=index,
            value=step,
        )
    return value


def check_value(value: Any, *, field: str, index: int | None = None) -> float:
    """A value as a float: any number (NaN and infinities included), not a str or a bool."""
    if type(value) is float:
        return value
    try:
        if value is None or isinstance(value, str | bytes | bool):
            raise TypeError
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidPoint(
            f"{field} = {value!r:.60} is not a number ({type(value).__name__}); "
            "log floats (NaN and infinities are kept as sent)",
            field=field,
            index=index,
            value=value,
        ) from None


def _as_list(items: Sequence[Any]) -> list[Any]:
    """A list of plain Python scalars (numpy arrays and tensors through ``tolist``)."""
    if hasattr(items, "tolist"):
        return list(items.tolist())
    return items if isinstance(items, list) else list(items)


def steps_list(steps: Sequence[Any]) -> list[int]:
    """`steps` as a list of ints, each checked (`check_step`); may be `steps` itself."""
    seq = _as_list(steps)
    if set(map(type, seq)) <= {int} and (not seq or (min(seq) >= 0 and max(seq) <= MAX_STEP)):
        return seq
    return [check_step(s, field=f"steps[{i}]", index=i) for i, s in enumerate(seq)]


def floats_list(values: Sequence[Any], *, field: str = "values") -> list[float]:
    """`values` as a new list of floats, each checked (`check_value`)."""
    seq = _as_list(values)
    if set(map(type, seq)) <= {float, int}:
        try:
            return list(map(float, seq))
        except OverflowError:
            pass  # an int too large for a double: found below
    return [check_value(v, field=f"{field}[{i}]", index=i) for i, v in enumerate(seq)]


#: The keyword options of the background loss streamer (`LossStreamer`).
LOGGER_OPTIONS = (
    "chunk_points",
    "max_buffer_points",
    "buffer_timeout",
    "on_full",
    "stream_timeout",
    "max_backoff",
)


def check_logger_options(options: Mapping[str, Any]) -> None:
    """TypeError naming an unknown logger option, before anything is sent or started.

    >>> check_logger_options({"monitor": "validation/loss"})
    Traceback (most recent call last):
    ...
    TypeError: unknown run logger option 'monitor'; the options are chunk_points, \
max_buffer_points, buffer_timeout, on_full, stream_timeout, max_backoff (verdict \
thresholds go in create_run(..., verdict_config={...}))
    """
    for name in options:
        if name not in LOGGER_OPTIONS:
            raise TypeError(
                f"unknown run logger option {name!r}; the options are "
                f"{', '.join(LOGGER_OPTIONS)} (verdict thresholds go in "
                "create_run(..., verdict_config={...}))"
            )
