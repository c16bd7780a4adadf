"""How runs and specimens are laid out as rows, shared by the SQL backends.

Runs keep their hyperparameters as JSON and, for filtering in SQL, one typed row
per key (`_hyper_key`); specimens are stored as a JSON body. The grouping of
checkpoint rows into per-step records happens here too, after the read.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Sequence
from typing import Any

from evalstream_server.store._types import (
    SPLITS,
    CheckpointRow,
    EvaluationStepRow,
    HyperValue,
    NewRun,
    RunRecord,
    SpecimenRecord,
    Webhook,
)


def _new_run_id() -> str:
    return "r_" + secrets.token_hex(8)


def _hyper_key(value: HyperValue) -> tuple[str, float | int | None, str | None]:
    """(kind, num, text) as stored in run_hyperparameters: numbers compare numerically."""
    if isinstance(value, bool):
        return "bool", int(value), None
    if isinstance(value, int | float):
        # NaN is stored (and compared) as NULL: a NaN filter matches nothing.
        return "num", None if isinstance(value, float) and math.isnan(value) else value, None
    return "str", None, value


def _row_to_run(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        id=row[0],
        project=row[1],
        name=row[2],
        model=row[3],
        task=row[4],
        status=row[5],
        hyperparameters=json.loads(row[6]),
        verdict_config=json.loads(row[7]),
        created_at=row[8],
        updated_at=row[9],
        summary=json.loads(row[10]),
        alert_webhooks=tuple(Webhook(w["url"], w["format"]) for w in json.loads(row[11])),
    )


_RUN_COLUMNS = (
    "id, project, name, model, task, status, hyperparameters, verdict_config, "
    "created_at, updated_at, summary, alert_webhooks"
)


def _webhooks_to_json(webhooks: Sequence[Webhook]) -> str:
    return json.dumps([{"url": w.url, "format": w.format} for w in webhooks])


def _new_run(
    new: NewRun, hypers: dict[str, HyperValue], verdict: dict[str, HyperValue]
) -> RunRecord:
    """A created run's record: a fresh id, running, created and updated now."""
    now = time.time()
    return RunRecord(
        id=_new_run_id(),
        project=new.project,
        name=new.name,
        model=new.model,
        task=new.task,
        status="running",
        hyperparameters=hypers,
        verdict_config=verdict,
        created_at=now,
        updated_at=now,
        alert_webhooks=new.alert_webhooks,
    )


def _run_to_row(run: RunRecord) -> tuple[Any, ...]:
    """A run as the values of `_RUN_COLUMNS`, in order: `_row_to_run` reads it back."""
    return (
        run.id,
        run.project,
        run.name,
        run.model,
        run.task,
        run.status,
        json.dumps(run.hyperparameters),
        json.dumps(run.verdict_config),
        run.created_at,
        run.updated_at,
        json.dumps(run.summary),
        _webhooks_to_json(run.alert_webhooks),
    )


#: Specimen fields written to the body only when set, with their "not sent" value:
#: bodies written before these fields existed read them as not sent.
_VIEW_FIELDS: dict[str, str | int] = {"image_uri": "", "width": 0, "height": 0, "question": ""}


def _specimen_to_json(rec: SpecimenRecord) -> str:
    body: dict[str, Any] = {
        "prediction_text": rec.prediction_text,
        "reference_texts": list(rec.reference_texts),
        "predicted_boxes": [list(b) for b in rec.predicted_boxes],
        "ground_truth_boxes": [list(b) for b in rec.ground_truth_boxes],
        "scores": dict(rec.scores),
        "flags": list(rec.flags),
    }
    for name, unset in _VIEW_FIELDS.items():
        if (value := getattr(rec, name)) != unset:
            body[name] = value
    return json.dumps(body, separators=(",", ":"))


def _specimen_from_json(specimen_id: str, body: str) -> SpecimenRecord:
    d = json.loads(body)
    return SpecimenRecord(
        specimen_id=specimen_id,
        prediction_text=d["prediction_text"],
        reference_texts=tuple(d["reference_texts"]),
        predicted_boxes=tuple(
            (float(b[0]), float(b[1]), float(b[2]), float(b[3]), str(b[4]), float(b[5]))
            for b in d["predicted_boxes"]
        ),
        ground_truth_boxes=tuple(
            (float(b[0]), float(b[1]), float(b[2]), float(b[3]), str(b[4]), float(b[5]))
            for b in d["ground_truth_boxes"]
        ),
        scores={str(k): float(v) for k, v in d["scores"].items()},
        flags=tuple(d["flags"]),
        image_uri=str(d.get("image_uri", "")),
        width=int(d.get("width", 0)),
        height=int(d.get("height", 0)),
        question=str(d.get("question", "")),
    )


def _group_checkpoints(rows: Sequence[tuple[Any, ...]]) -> list[CheckpointRow]:
    """Rows (split, step, metric, value, signature) as one CheckpointRow per (split, step).

    Sorted by split (SPLITS order) then step; a NULL value is a NaN.
    """
    grouped: dict[tuple[str, int], tuple[dict[str, float], dict[str, str]]] = {}
    for split, step, metric, value, signature in rows:
        metrics, sigs = grouped.setdefault((split, step), ({}, {}))
        metrics[metric] = math.nan if value is None else value
        if signature:
            sigs[metric] = signature
    return [
        CheckpointRow(split, step, metrics, sigs)
        for (split, step), (metrics, sigs) in sorted(
            grouped.items(), key=lambda kv: (SPLITS.index(kv[0][0]), kv[0][1])
        )
    ]


def _group_evaluation_steps(
    metric_rows: Sequence[tuple[Any, ...]], count_rows: Sequence[tuple[Any, ...]]
) -> list[EvaluationStepRow]:
    """Metric rows (split, step, metric, value) and specimen counts (split, step, count)
    as one EvaluationStepRow per (split, step), sorted by split (SPLITS order) then step.
    """
    steps: dict[tuple[str, int], tuple[int, dict[str, float]]] = {}
    for sp, st, metric, value in metric_rows:
        steps.setdefault((sp, st), (0, {}))[1][metric] = math.nan if value is None else value
    for sp, st, count in count_rows:
        steps[(sp, st)] = (count, steps.get((sp, st), (0, {}))[1])
    return [
        EvaluationStepRow(sp, st, count, metrics)
        for (sp, st), (count, metrics) in sorted(
            steps.items(), key=lambda kv: (SPLITS.index(kv[0][0]), kv[0][1])
        )
    ]
