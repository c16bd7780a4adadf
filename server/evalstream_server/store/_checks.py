"""Input checks every store backend makes: splits, steps, page sizes, hyperparameters,
specimens, and the opaque page tokens of paged listings.

Each check raises ``InvalidInput`` naming the offending field, so that the servicer
maps it to INVALID_ARGUMENT with a field violation.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evalstream_server.store._records import _hyper_key
from evalstream_server.store._types import (
    SPLITS,
    STATUSES,
    TASKS,
    Conflict,
    HyperValue,
    InvalidInput,
    NewRun,
    SpecimenRecord,
)

_INT64_MAX = 2**63 - 1


def _check_split(split: object, *, field: str = "split", allow_empty: bool = False) -> str:
    if allow_empty and split == "":
        return ""
    if not isinstance(split, str) or split not in SPLITS:
        raise InvalidInput(f"unknown split {split!r}; expected one of {list(SPLITS)}", field=field)
    return split


def _check_status(status: object, *, field: str = "status") -> str:
    if not isinstance(status, str) or status not in STATUSES:
        raise InvalidInput(
            f"unknown status {status!r}; expected one of {list(STATUSES)}", field=field
        )
    return status


def _check_step(step: object, *, field: str = "step") -> int:
    if isinstance(step, bool) or not isinstance(step, int | np.integer):
        raise InvalidInput(f"step must be an integer, got {step!r}", field=field)
    value = int(step)
    if not 0 <= value <= _INT64_MAX:
        raise InvalidInput(f"step {value} is not in [0, 2**63)", field=field)
    return value


def _check_step_range(start: int | None, end: int | None) -> tuple[int, int]:
    """``(start, end)`` as inclusive bounds, None meaning the first and the last step.

    >>> _check_step_range(None, 5)
    (0, 5)
    """
    lo = 0 if start is None else _check_step(start, field="start_step")
    hi = _INT64_MAX if end is None else _check_step(end, field="end_step")
    if lo > hi:
        raise InvalidInput(
            f"start_step {lo} is after end_step {hi}; the range is inclusive, start <= end",
            field="start_step",
        )
    return lo, hi


def _check_series_read(
    splits: Sequence[str], start: int | None, end: int | None
) -> tuple[int, int]:
    """The checks of a read of series: known splits, and the range as `_check_step_range`."""
    for split in splits:
        _check_split(split, field="splits")
    return _check_step_range(start, end)


def _check_page_size(page_size: object) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise InvalidInput(f"page size must be >= 1, got {page_size!r}", field="page_size")
    return page_size


def _check_hypers(values: Mapping[str, HyperValue], *, field: str) -> dict[str, HyperValue]:
    if not isinstance(values, Mapping):
        raise InvalidInput(f"{field} must be a mapping, got {type(values).__name__}", field=field)
    out: dict[str, HyperValue] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"{field} key {key!r} must be a non-empty string", field=field)
        if isinstance(value, bool | str | float):
            out[key] = value
        elif isinstance(value, int):
            if not -(2**63) <= value <= _INT64_MAX:
                raise InvalidInput(f"{field}[{key!r}] = {value} does not fit in int64", field=field)
            out[key] = value
        else:
            raise InvalidInput(
                f"{field}[{key!r}] has type {type(value).__name__}; "
                "expected bool, int, float or str",
                field=field,
            )
    return out


#: Saved checkpoints one update may record, and the longest path kept.
MAX_SAVED_CHECKPOINTS = 1000
MAX_CHECKPOINT_PATH = 4096


def _check_saved_checkpoints(
    saved: Mapping[int, str] | Sequence[tuple[int, str]],
) -> dict[int, str]:
    """Saved checkpoints as {step: path}; a step given twice keeps its last path.

    >>> _check_saved_checkpoints([(500, "out/checkpoint-500"), (0, "a"), (500, "b")])
    {500: 'b', 0: 'a'}
    """
    pairs = list(saved.items()) if isinstance(saved, Mapping) else list(saved)
    if len(pairs) > MAX_SAVED_CHECKPOINTS:
        raise InvalidInput(
            f"{len(pairs)} saved checkpoints in one update; send at most "
            f"{MAX_SAVED_CHECKPOINTS} per update",
            field="saved_checkpoints",
        )
    out: dict[int, str] = {}
    for i, pair in enumerate(pairs):
        field = f"saved_checkpoints[{i}]"
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise InvalidInput(f"{field} must be a (step, path) pair, got {pair!r}", field=field)
        step = _check_step(pair[0], field=f"{field}.step")
        path = pair[1]
        if not isinstance(path, str) or not 1 <= len(path) <= MAX_CHECKPOINT_PATH:
            raise InvalidInput(
                f"{field}.path must be a string of 1-{MAX_CHECKPOINT_PATH} characters, "
                f"got {str(path)[:40]!r}",
                field=f"{field}.path",
            )
        if "\0" in path:
            raise InvalidInput(
                f"{field}.path {path[:40]!r} holds a NUL character", field=f"{field}.path"
            )
        out[step] = path
    return out


def _check_specimen(rec: object, index: int) -> SpecimenRecord:
    field = f"specimens[{index}]"
    if not isinstance(rec, SpecimenRecord):
        raise InvalidInput(f"{field} is a {type(rec).__name__}, not a SpecimenRecord", field=field)
    if not isinstance(rec.specimen_id, str) or not rec.specimen_id:
        raise InvalidInput(
            f"{field}.specimen_id must be a non-empty string", field=f"{field}.specimen_id"
        )
    for name in ("predicted_boxes", "ground_truth_boxes"):
        for j, box in enumerate(getattr(rec, name)):
            if len(box) != 6:
                raise InvalidInput(
                    f"{field}.{name}[{j}] has {len(box)} fields; expected "
                    "(x1, y1, x2, y2, label, confidence)",
                    field=f"{field}.{name}",
                )
    for name in ("width", "height"):
        value = getattr(rec, name)
        if not isinstance(value, int) or value < 0:
            raise InvalidInput(
                f"{field}.{name} is {value!r}; expected pixels >= 0 (0 when unknown)",
                field=f"{field}.{name}",
            )
    return rec


def _encode_token(kind: str, *values: object) -> str:
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_token(token: str, kind: str, types: tuple[type, ...]) -> list[Any]:
    bad = InvalidInput(
        f"page token {token[:40]!r} is malformed or not from this listing", field="page_token"
    )
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise bad from exc
    if not isinstance(decoded, list) or len(decoded) != len(types) + 1 or decoded[0] != kind:
        raise bad
    values = decoded[1:]
    for value, typ in zip(values, types, strict=True):
        if isinstance(value, bool) or not isinstance(value, typ):
            raise bad
    return values


def _check_new_run(new: object) -> tuple[dict[str, HyperValue], dict[str, HyperValue]]:
    """A new run's checks; its hyperparameters and verdict configuration, checked."""
    if not isinstance(new, NewRun):
        raise InvalidInput(f"expected a NewRun, got {type(new).__name__}", field="run")
    for name in ("project", "name"):
        value = getattr(new, name)
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"{name} must be a non-empty string, got {value!r}", field=name)
    if not isinstance(new.model, str):
        raise InvalidInput(f"model must be a string, got {new.model!r}", field="model")
    if new.task not in TASKS:
        raise InvalidInput(
            f"unknown task {new.task!r}; expected one of {list(TASKS)}", field="task"
        )
    hypers = _check_hypers(new.hyperparameters, field="hyperparameters")
    verdict = _check_hypers(new.verdict_config, field="verdict_config")
    return hypers, verdict


def _check_metrics(
    metrics: Mapping[str, object], signatures: Mapping[str, object]
) -> list[tuple[str, float, str]]:
    """Checkpoint metrics as (name, value, signature), every value a float (NaN kept).

    >>> _check_metrics({"bleu": 31, "chrf": 0.5}, {"bleu": "nrefs:1"})
    [('bleu', 31.0, 'nrefs:1'), ('chrf', 0.5, '')]
    """
    out: list[tuple[str, float, str]] = []
    for name, value in metrics.items():
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"metric name {name!r} must be a non-empty string", field="metrics")
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
            raise InvalidInput(f"metric {name!r} = {value!r} is not a number", field="metrics")
        sig = signatures.get(name, "")
        if not isinstance(sig, str):
            raise InvalidInput(f"signature of {name!r} must be a string", field="signatures")
        out.append((name, float(value), sig))
    extra = set(signatures) - set(metrics)
    if extra:
        raise InvalidInput(
            f"signatures for metrics not logged: {sorted(extra)}", field="signatures"
        )
    return out


def _check_added_hypers(
    run_id: str, have: Mapping[str, HyperValue], new: Mapping[str, HyperValue]
) -> dict[str, HyperValue]:
    """The hyperparameters of ``new`` the run does not have yet.

    A key it has with the same value (compared as ListRuns filters compare: numbers
    numerically, a bool never equal to a number, NaN equal to NaN) is left out; a key
    it has with another value raises Conflict, for the first such key.

    >>> _check_added_hypers("r_1", {"lr": 0.1, "bs": 8}, {"bs": 8.0, "epochs": 3})
    {'epochs': 3}
    """
    added: dict[str, HyperValue] = {}
    for key, value in new.items():
        if key not in have:
            added[key] = value
        elif _hyper_key(have[key]) != _hyper_key(value):
            raise Conflict(
                f"hyperparameter {key!r} of run {run_id!r} is {have[key]!r}; refusing "
                f"{value!r}: a run's hyperparameters are what runs are compared by and do "
                "not change during a run. Create a new run for the new value, or record "
                "it in the summary (UpdateRun summary)"
            )
    return added
