"""The API's JSON mapping of the contract's messages, against hand-written expectations."""

from __future__ import annotations

import json
import math

from evalstream.v1 import common_pb2, runs_pb2
from evalstream_server.web._json import message_to_json


def test_run_fields_enums_maps_oneofs_and_timestamps() -> None:
    run = runs_pb2.Run(
        id="r_1",
        project="p",
        status=runs_pb2.RUN_STATUS_FAILED,
        task=runs_pb2.TASK_VQA,
        hyperparameters={
            "lr": runs_pb2.HyperValue(float_value=3e-4),
            "epochs": runs_pb2.HyperValue(int_value=2**40),
            "opt": runs_pb2.HyperValue(string_value="adamw"),
        },
    )
    run.created_at.FromSeconds(1_700_000_000)
    got = message_to_json(run)
    assert got["status"] == "failed" and got["task"] == "vqa"
    assert got["hyperparameters"] == {
        "lr": {"float_value": 3e-4},
        "epochs": {"int_value": 2**40},  # a number, not the proto3 mapping's string
        "opt": {"string_value": "adamw"},
    }
    assert got["created_at"] == "2023-11-14T22:13:20Z"
    assert got["updated_at"] is None  # not set
    json.dumps(got, allow_nan=False)


def test_unset_optionals_are_null_and_set_ones_keep_their_value() -> None:
    evidence = runs_pb2.Evidence(gap=-0.25, best_validation_step=0, first_nonfinite_step=12)
    got = message_to_json(evidence)
    assert got["gap"] == -0.25
    assert got["best_validation_step"] == 0  # set to zero is not "unset"
    assert got["first_nonfinite_step"] == 12
    assert got["train_relative_decrease"] is None


def test_series_nonfinite_values_are_strings() -> None:
    series = runs_pb2.Series(
        split=common_pb2.SPLIT_VALIDATION,
        name="loss",
        steps=[0, 2**53],
        values=[math.inf, -math.inf],
        total_points=2,
    )
    assert message_to_json(series) == {
        "split": "validation",
        "name": "loss",
        "steps": [0, 2**53],
        "values": ["Infinity", "-Infinity"],
        "wall_times": [],
        "total_points": 2,
    }
