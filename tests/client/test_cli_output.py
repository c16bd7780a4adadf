"""What the `evalstream` CLI prints: verdicts, watch diffs, tables, --json and --version.

The commands run against a stand-in client (its answers are the client's own result
types), so that the expected text is worked out by hand here.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from evalstream import RunInfo, Series
from evalstream._verdicts import (
    Advice,
    CheckpointGrade,
    Comparison,
    ComparisonRow,
    EarlyStopping,
    PairChange,
    Verdict,
)
from evalstream.cli import _format, _parser, main
from evalstream.cli._format import _table, format_verdict, format_verdict_change

ESCAPE = re.compile(r"\x1b\[")
BOX_DRAWING = re.compile(r"[\u2500-\u257f]")

SUMMARY = (
    "Validation loss has risen 12% above its best (step 1500) while training loss "
    "keeps improving (mild overfitting)."
)


def _verdict(**changes: Any) -> Verdict:
    base = Verdict(
        run_id="r_1",
        state="healthy",
        severity="",
        summary="Training and validation loss are falling.",
        evidence={
            "train_relative_decrease": 0.5,
            "gap": 0.0625,
            "first_nonfinite_step": None,
            "spike_steps": (),
        },
        advice=(),
        checkpoints=(
            CheckpointGrade(500, "bleu", None, 0.31, None, ""),
            CheckpointGrade(500, "f1", 0.75, 0.72, -0.03, "healthy"),
        ),
        early_stopping=EarlyStopping("validation/loss", "min", 500, 0.5, 0, 0, False),
        loss_context={
            "initial_loss": 2.5,
            "final_loss": 0.25,
            "initial_band": "typical_untrained",
            "final_band": "",
            "caveat": "rough context",
        },
        as_of_step=1000,
    )
    return dataclasses.replace(base, **changes)


OVERFITTING = _verdict(
    state="overfitting",
    severity="mild",
    summary=SUMMARY,
    advice=(Advice("stop_earlier", "Stop earlier: deploy step 1500."),),
    checkpoints=_verdict().checkpoints
    + (CheckpointGrade(2000, "f1", 0.97, 0.74, -0.23, "severe_overfitting"),),
    early_stopping=EarlyStopping("validation/loss", "min", 1500, 0.5, 2, 500, False),
    as_of_step=2000,
)


@pytest.fixture(autouse=True)
def _unfitted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output into a StringIO is a pipe: plain, and unwrapped unless COLUMNS is set."""
    monkeypatch.delenv("COLUMNS", raising=False)


def test_verdict_prints_no_none_and_no_empty_grade() -> None:
    text = format_verdict(_verdict())
    assert "None" not in text
    lines = text.splitlines()
    assert lines[0] == "HEALTHY at step 1000: Training and validation loss are falling."
    table = lines[lines.index("checkpoints") + 1 : lines.index("checkpoints") + 4]
    assert [line.split() for line in table] == [
        ["step", "metric", "train", "validation", "grade"],
        ["500", "bleu", "-", "0.31", "-"],
        ["500", "f1", "0.75", "0.72", "healthy"],
    ]
    # evidence by name in words, without the empty values
    evidence = lines[lines.index("evidence") + 1 : lines.index("evidence") + 3]
    assert evidence == ["  train relative decrease     0.5", "  gap                      0.0625"]
    assert "first nonfinite step" not in text and "spike steps" not in text
    assert "best validation/loss 0.5 at step 500 (the latest evaluation): keep going" in lines
    assert lines[-1] == "loss context: start 2.5 (typical_untrained), final 0.25; rough context"


def test_verdict_command_prints_the_table_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_client(monkeypatch, verdicts=[OVERFITTING])
    out = io.StringIO()
    assert main(["runs", "verdict", "r_1"], out=out) == 0
    assert out.getvalue().splitlines()[0] == f"OVERFITTING (mild) at step 2000: {SUMMARY}"
    assert "None" not in out.getvalue()
    out = io.StringIO()
    assert main(["runs", "verdict", "r_1", "--json"], out=out) == 0
    shown = json.loads(out.getvalue())
    assert shown["checkpoints"][0] == {
        "step": 500,
        "metric": "bleu",
        "train_value": None,
        "validation_value": 0.31,
        "gap": None,
        "grade": "",
        "path": "",
    }
    assert shown["early_stopping"]["best_checkpoint_path"] == ""


def test_watch_prints_the_first_verdict_then_only_what_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    later = dataclasses.replace(OVERFITTING, as_of_step=2100, evidence={"gap": 0.3})
    stop = dataclasses.replace(
        later,
        as_of_step=2200,
        early_stopping=EarlyStopping("validation/loss", "min", 1500, 0.5, 4, 700, True),
    )
    _fake_client(monkeypatch, verdicts=[_verdict(), OVERFITTING, later, stop])
    out = io.StringIO()
    assert main(["runs", "watch", "r_1"], out=out) == 0
    first, *changes = out.getvalue().rstrip("\n").split("\n\n")
    assert first == format_verdict(_verdict())
    # the step-2100 verdict changed only numbers of the evidence: nothing is printed
    assert changes == [
        "step 2000: OVERFITTING (mild), was HEALTHY\n"
        f"  {SUMMARY}\n"
        "  advice: Stop earlier: deploy step 1500.\n"
        "  best validation/loss 0.5 at step 1500 (2 evaluations ago): keep going\n"
        "  step  metric  train  validation  grade\n"
        "  2000  f1       0.97        0.74  severe_overfitting",
        "step 2200\n  best validation/loss 0.5 at step 1500 (4 evaluations ago): stop now",
        # then the end, once the watch is over (the fake run still says running)
        "run p/a-run-with-a-rather-long-name running at step 2200: OVERFITTING",
    ]
    assert format_verdict_change(OVERFITTING, later) == ""


def test_watch_json_is_one_verdict_per_line(monkeypatch: pytest.MonkeyPatch) -> None:
    nan = dataclasses.replace(OVERFITTING, evidence={"gap": float("nan")})
    _fake_client(monkeypatch, verdicts=[_verdict(), nan])
    out = io.StringIO()
    assert main(["runs", "watch", "r_1", "--json"], out=out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    parsed = [json.loads(line) for line in lines]  # strict JSON: NaN is null
    assert [(v["state"], v["as_of_step"]) for v in parsed] == [
        ("healthy", 1000),
        ("overfitting", 2000),
    ]
    assert parsed[1]["evidence"] == {"gap": None}


@pytest.mark.parametrize(
    "argv",
    [
        ["health", "--json"],
        ["runs", "list", "--project", "p", "--json"],
        ["runs", "show", "r_1", "--json"],
        ["runs", "verdict", "r_1", "--json"],
        ["runs", "compare", "r_1", "r_2", "--json"],
        ["runs", "watch", "r_1", "--json"],
    ],
)
def test_json_output_parses(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    _fake_client(monkeypatch, verdicts=[_verdict()])
    out = io.StringIO()
    assert main(argv, out=out) == 0
    text = out.getvalue()
    lines = "watch" in argv  # JSON Lines
    parsed = [json.loads(line) for line in text.splitlines()] if lines else json.loads(text)
    assert parsed
    if argv[0] == "health":
        assert parsed == {"service": "", "status": "SERVING"}


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "list", "--project", "p"],
        ["runs", "show", "r_1"],
        ["runs", "verdict", "r_1"],
        ["runs", "compare", "r_1", "r_2"],
        ["runs", "watch", "r_1"],
    ],
)
def test_tables_are_plain_and_fit_the_width(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    _fake_client(monkeypatch, verdicts=[_verdict(), OVERFITTING])
    monkeypatch.setenv("COLUMNS", "60")
    out = io.StringIO()
    assert main(argv, out=out) == 0
    text = out.getvalue()
    assert not ESCAPE.search(text) and not BOX_DRAWING.search(text)
    too_wide = [line for line in text.splitlines() if len(line) > 60]
    assert not too_wide
    # every cell is still there, wrapped or as records
    words = {
        "list": ["a-run-with-a-rather-long-name", "r_0123456789abcdef", "running"],
        "show": ["a-run-with-a-rather-long-name", "steps_per_epoch"],
        "compare": ["a-run-with-a-rather-long-name", "learning_rate*", "healthy"],
        "verdict": ["severe_overfitting", "Stop earlier"],
        "watch": ["severe_overfitting", "Stop earlier"],
    }
    for word in words[argv[1]]:
        assert word in text


def test_wide_table_becomes_records_on_a_narrow_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_client(monkeypatch)
    monkeypatch.setenv("COLUMNS", "40")
    out = io.StringIO()
    assert main(["runs", "list", "--project", "p"], out=out) == 0
    assert out.getvalue().splitlines()[:3] == [
        "id       r_0123456789abcdef",
        "name     a-run-with-a-rather-long-name",
        "model    m",
    ]


def test_into_a_pipe_rows_are_not_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_client(monkeypatch)
    out = io.StringIO()
    assert main(["runs", "list", "--project", "p"], out=out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].split() == [
        "r_0123456789abcdef",
        "a-run-with-a-rather-long-name",
        "m",
        "-",
        "running",
        "1970-01-01",
        "00:00",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "80")
    out = _Terminal()
    _format._show(out, _format._verdict_view(OVERFITTING))
    text = out.getvalue()
    assert ESCAPE.search(text)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert plain.startswith("OVERFITTING (mild) at step 2000: Validation loss has risen")
    assert max(len(line) for line in plain.splitlines()) <= 80


def test_table_numbers_are_right_aligned() -> None:
    assert _table([["metric", "value"], ["bleu", "0.31"], ["rouge1", "0.4762"]]).splitlines() == [
        "metric   value",
        "bleu      0.31",
        "rouge1  0.4762",
    ]


def test_narrow_table_keeps_every_word_and_number_whole() -> None:
    rows = [["IoU", "TP", "precision", "F1", "mean IoU"]]
    rows += [["0.5", "12", "0.5000 low", "0.5000 needs_improvement", "1.0000 very_tight"]]
    rows += [["0.75", "3", "0.2500 low", "n/a", "0.9000 very_tight"]]
    text = _format._render(_format._grid(rows), width=50)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 50 and len(lines) > len(rows)  # it wrapped, within 50
    assert sorted(text.split()) == sorted(" ".join(" ".join(r) for r in rows).split())


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"evalstream {importlib.metadata.version('evalstream')}\n"


def test_version_without_metadata_is_the_package_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import evalstream

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert _parser.version() == evalstream.__version__


class _FakeRun:
    def __init__(self, info: RunInfo) -> None:
        self.info, self.id = info, info.id

    def curves(self, *, max_points: int) -> list[Series]:
        # `runs show` prints the count and the last point: it must not read every point.
        assert max_points >= 2, f"runs show read the curves with max_points={max_points}"
        return [Series("train", "loss", (0, 10), (2.5, 1.25), (0.0, 1.0), 2)]


class _FakeClient:
    """Answers like `evalstream.Client`, from fixed results."""

    def __init__(self, verdicts: list[Verdict]) -> None:
        self.verdicts = verdicts
        self.info = RunInfo(
            id="r_0123456789abcdef",
            project="p",
            name="a-run-with-a-rather-long-name",
            model="m",
            task="",
            status="running",
            hyperparameters={"learning_rate": 0.0001, "batch_size": 32},
            derived={"steps_per_epoch": 3},
            created_at=0.0,
            updated_at=0.0,
        )

    def __enter__(self) -> _FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def health(self, service: str) -> str:
        return "SERVING"

    def list_runs(self, project: str, **filters: Any) -> list[RunInfo]:
        return [self.info]

    def get_run(self, run_id: str) -> _FakeRun:
        return _FakeRun(self.info)

    def verdict(self, run_id: str) -> Verdict:
        return self.verdicts[-1]

    def watch(self, run_id: str) -> Iterator[Verdict]:
        yield from self.verdicts

    def curves(self, run_id: str, **read: Any) -> list[Series]:
        return []  # `runs watch` reads the losses: this run has none

    def compare(self, runs: list[str], *, baseline: str) -> Comparison:
        row = ComparisonRow(
            run_id="r_0123456789abcdef",
            run_name="a-run-with-a-rather-long-name",
            model="m",
            hyperparameters={"learning_rate": 0.0001, "batch_size": 32, "warmup_steps": 100},
            final_train_loss=0.25,
            best_train_loss=0.2,
            final_validation_loss=None,
            best_validation_loss=0.5,
            best_metrics={"bbox_f1@0.5": 0.75, "rouge2_fmeasure": 0.4762},
            deltas={},
            state="healthy",
        )
        other = dataclasses.replace(
            row, run_id="r_2", run_name="b", hyperparameters={"learning_rate": 0.0003}
        )
        return Comparison(
            rows=(row, other),
            differing=("learning_rate",),
            pairs=(PairChange(row.run_id, "r_2", ("learning_rate",), ""),),
            best={"bbox_f1@0.5": (row.run_id, 0.75)},
            baseline_run_id=row.run_id,
            incomparable=(),
        )


def _fake_client(monkeypatch: pytest.MonkeyPatch, *, verdicts: list[Verdict] = ()) -> None:
    fake = _FakeClient(list(verdicts) or [_verdict()])
    monkeypatch.setattr("evalstream.cli.Client", lambda *args, **kwargs: fake)
