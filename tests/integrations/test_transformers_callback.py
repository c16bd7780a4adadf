"""EvalstreamCallback in a real (tiny) Trainer against a real server."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")
import torch
from evalstream import Client
from evalstream._runs import Run
from evalstream.integrations.transformers import (
    EvalstreamCallback,
    checkpoint_metrics,
    hyperparameters_of,
)
from torch import nn
from transformers import (
    PrinterCallback,
    Trainer,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from tests.conftest import LiveServer


class Regressor(nn.Module):
    """y = w.x; raises at the forward call `fail_at` (counted from 1) when set."""

    def __init__(self, fail_at: int = 0) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.calls = 0
        self.fail_at = fail_at

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.fail_at and self.calls == self.fail_at:
            raise RuntimeError("boom: a bad batch")
        pred = self.lin(x).squeeze(-1)
        return {"loss": nn.functional.mse_loss(pred, labels), "logits": pred}


def dataset(n: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    return [{"x": x[i], "labels": y[i]} for i in range(n)]


def make_trainer(
    tmp_path: Path, callback: EvalstreamCallback, *, fail_at: int = 0, **overrides: Any
) -> Trainer:
    options: dict[str, Any] = {
        "output_dir": str(tmp_path / "out"),
        "max_steps": 6,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 2,
        "learning_rate": 0.05,
        "weight_decay": 0.01,
        "warmup_steps": 2,
        "logging_steps": 1,
        "eval_strategy": "steps",
        "eval_steps": 3,
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "seed": 7,
        "optim": "adamw_torch",
        "use_cpu": True,
        **overrides,
    }
    trainer = Trainer(
        model=Regressor(fail_at),
        args=TrainingArguments(**options),
        train_dataset=dataset(24),
        eval_dataset=dataset(8),
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)
    return trainer


def test_callback_logs_a_trainer_run(live_server: LiveServer, tmp_path: Path) -> None:
    cb = EvalstreamCallback(live_server.target, project="hf", name="tiny", task="other")
    make_trainer(tmp_path, cb).train()
    assert cb.run is not None
    with Client(live_server.target) as client:
        run = client.get_run("hf/tiny")
        info = run.info
        assert info.status == "finished"
        assert info.model == "Regressor"  # no config: the class name
        hp = info.hyperparameters
        # 4 per device x 2 accumulation x 1 process; 24 examples.
        assert hp["batch_size"] == 8
        assert hp["per_device_train_batch_size"] == 4
        assert hp["gradient_accumulation_steps"] == 2
        assert hp["dataset_size"] == 24
        assert hp["max_steps"] == 6 and "epochs" not in hp
        assert hp["learning_rate"] == pytest.approx(0.05)
        assert hp["weight_decay"] == pytest.approx(0.01)
        assert hp["warmup_steps"] == 2
        assert hp["eval_interval"] == 3
        assert hp["seed"] == 7
        assert hp["optimizer"] == "adamw_torch"
        assert hp["lr_scheduler"] == "linear"
        assert info.derived["steps_per_epoch"] == math.ceil(24 / 8)

        curves = {(s.split, s.name): s for s in run.curves()}
        assert curves[("train", "loss")].steps == (1, 2, 3, 4, 5, 6)
        assert ("train", "learning_rate") in curves and ("train", "grad_norm") in curves
        # eval_loss routed to validation, prefix stripped, at the evaluation steps.
        assert curves[("validation", "loss")].steps == (3, 6)
        # End-of-training figures are no curves, on either split.
        names = {name for _, name in curves}
        assert not names & {"train_runtime", "total_flos", "train_loss", "runtime_train"}
        assert ("train", "epoch") in curves and ("validation", "epoch") not in curves
        steps = {(e.step, e.split): e for e in run.evaluation_steps()}
        assert set(steps) == {(3, "validation"), (6, "validation")}
        loss_at_6 = curves[("validation", "loss")].values[-1]
        assert steps[(6, "validation")].metrics == {"loss": pytest.approx(loss_at_6)}
        summary = run.refresh().summary
        assert {"train_runtime", "total_flos", "train_loss", "epoch"} <= set(summary)
        assert summary["epoch"] == pytest.approx(2.0)  # 6 steps of 3 per epoch


def test_hyperparameters_epochs_and_extra(tmp_path: Path) -> None:
    args = TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=2.5,
        warmup_steps=0.1,
        eval_strategy="epoch",
        optim="sgd",
        report_to=[],
    )
    hp = hyperparameters_of(args, None)
    assert hp["epochs"] == 2.5 and "max_steps" not in hp
    assert hp["warmup_ratio"] == pytest.approx(0.1) and "warmup_steps" not in hp
    assert hp["optimizer"] == "sgd"
    assert "eval_interval" not in hp and "dataset_size" not in hp


def test_checkpoint_metrics_keep_quality_only() -> None:
    got = checkpoint_metrics(
        {
            "eval_loss": 0.5,
            "eval_wer": 0.2,
            "eval_runtime": 1.0,
            "eval_samples_per_second": 3.0,
            "eval_steps_per_second": 1.0,
            "epoch": 2.0,
            "eval_note": "text",
            "test_bleu": 30,
        }
    )
    assert got == {"loss": 0.5, "wer": 0.2, "bleu": 30.0}


def test_extra_hyperparameters_and_run_name(live_server: LiveServer, tmp_path: Path) -> None:
    cb = EvalstreamCallback(
        live_server.target, project="hf", hyperparameters={"lora_rank": 8, "seed": 1}
    )
    make_trainer(tmp_path, cb, run_name="my-run", eval_strategy="no").train()
    assert cb.run is not None
    info = cb.run.refresh()
    assert info.name == "my-run"
    assert info.hyperparameters["lora_rank"] == 8
    assert info.hyperparameters["seed"] == 1  # the caller's over the arguments'


def _overfitting_run(run: Run) -> None:
    """Training falls steadily; validation is best at step 40, then rises 40%."""
    for step in range(1, 121):
        run.log(step, loss=2.0 * math.exp(-step / 40))
    for step, value in zip(range(20, 121, 20), (1.2, 1.0, 1.1, 1.2, 1.3, 1.4), strict=True):
        run.log(step, split="validation", loss=value)


def test_stop_decision_sets_control(live_server: LiveServer, tmp_path: Path) -> None:
    cb = EvalstreamCallback(live_server.target, project="hf", name="stop", stop_on=("overfitting",))
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    state = TrainerState()
    cb.on_train_begin(args, state, TrainerControl())
    assert cb.run is not None
    _overfitting_run(cb.run)
    state.global_step = 120
    control = TrainerControl()
    cb.on_evaluate(args, state, control, metrics={"eval_loss": 1.4})
    assert control.should_training_stop
    assert cb.decision is not None and cb.decision.stop
    assert cb.decision.state == "overfitting"
    assert cb.decision.best_step == 40
    cb.on_train_end(args, state, control)
    assert cb.run.info.status == "finished"
    cb.close()


def test_no_rule_reads_no_verdict(live_server: LiveServer, tmp_path: Path) -> None:
    cb = EvalstreamCallback(live_server.target, project="hf", name="norule")
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    state = TrainerState()
    cb.on_train_begin(args, state, TrainerControl())
    assert cb.run is not None
    _overfitting_run(cb.run)
    state.global_step = 120
    control = TrainerControl()
    cb.on_evaluate(args, state, control, metrics={"eval_loss": 1.4})
    assert not control.should_training_stop and cb.decision is None
    cb.on_train_end(args, state, control)
    cb.close()


def test_only_main_process_talks(tmp_path: Path) -> None:
    # Nothing listens at this address: any call would fail.
    cb = EvalstreamCallback("127.0.0.1:9", project="hf", stop_on=("diverged",), timeout=1.0)
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    state = TrainerState(is_world_process_zero=False, is_local_process_zero=False)
    control = TrainerControl()
    cb.on_train_begin(args, state, control)
    cb.on_log(args, state, control, logs={"loss": 1.0, "eval_loss": 2.0})
    cb.on_evaluate(args, state, control, metrics={"eval_loss": 2.0})
    cb.on_save(args, state, control)
    cb.on_train_end(args, state, control)
    assert cb.run is None and cb._client is None
    assert not control.should_training_stop


def test_bad_target_fails_fast(tmp_path: Path) -> None:
    cb = EvalstreamCallback("127.0.0.1:9", project="hf", name="x", timeout=1.0)
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    with pytest.raises(RuntimeError, match=r"cannot start run hf/x at 127\.0\.0\.1:9"):
        cb.on_train_begin(args, TrainerState(), TrainerControl())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"project": ""}, "project is required"),
        ({"project": "hf", "stop_on": ("healthy",)}, "'healthy' is not a state to stop on"),
        ({"project": "hf", "stop_on": "overfit"}, "'overfit' is not a state to stop on"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EvalstreamCallback("127.0.0.1:9", **kwargs)


def test_training_that_raises_fails_the_run(live_server: LiveServer, tmp_path: Path) -> None:
    cb = EvalstreamCallback(live_server.target, project="hf", name="boom")
    trainer = make_trainer(tmp_path, cb, fail_at=5)
    with pytest.raises(RuntimeError, match="boom"), cb:
        trainer.train()
    assert cb.run is not None
    assert cb.run.refresh().status == "failed"
    assert sys.excepthook is sys.__excepthook__ or sys.excepthook.__name__ != "hook"


def test_uncaught_exception_hook_fails_the_run(
    live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    previous = sys.excepthook
    cb = EvalstreamCallback(live_server.target, project="hf", name="hooked")
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    cb.on_train_begin(args, TrainerState(), TrainerControl())
    assert cb.run is not None and sys.excepthook is not previous
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    assert sys.excepthook is previous
    assert cb.run.refresh().status == "killed"
    assert "KeyboardInterrupt" in capsys.readouterr().err  # the previous hook ran too


def test_non_numeric_values_skipped(
    live_server: LiveServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cb = EvalstreamCallback(live_server.target, project="hf", name="mixed")
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    state = TrainerState()
    cb.on_train_begin(args, state, TrainerControl())
    with caplog.at_level("INFO", logger="evalstream.integrations.transformers"):
        for step in (4, 5):
            state.global_step = step
            cb.on_log(args, state, TrainerControl(), logs={"loss": 0.5, "note": "x", "n": 3})
    assert sum("'note' is not a number" in r.message for r in caplog.records) == 1
    cb.on_train_end(args, state, TrainerControl())
    assert cb.run is not None
    curves = {(s.split, s.name): s.values for s in cb.run.curves()}
    assert curves == {("train", "loss"): (0.5, 0.5), ("train", "n"): (3.0, 3.0)}
    cb.close()


def test_saved_checkpoints_name_the_directory(live_server: LiveServer, tmp_path: Path) -> None:
    cb = EvalstreamCallback(live_server.target, project="hf", name="saved")
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to=[])
    state = TrainerState()
    cb.on_train_begin(args, state, TrainerControl())
    assert cb.run is not None
    _overfitting_run(cb.run)
    for step in (20, 40, 60):
        state.global_step = step
        cb.on_save(args, state, TrainerControl())
    cb.run.flush(10)
    verdict = cb.run.verdict()
    assert verdict.early_stopping.best_step == 40
    assert verdict.early_stopping.best_checkpoint_path == str(tmp_path / "out" / "checkpoint-40")
    cb.on_train_end(args, state, TrainerControl())
    cb.close()


def test_evaluate_after_training_is_recorded(live_server: LiveServer, tmp_path: Path) -> None:
    cb = EvalstreamCallback(live_server.target, project="hf", name="after")
    trainer = make_trainer(tmp_path, cb, eval_steps=4)
    trainer.train()
    trainer.evaluate()  # after on_train_end: the run is finished, the client still open
    assert cb.run is not None
    curves = {(s.split, s.name): s.steps for s in cb.run.curves()}
    assert curves[("validation", "loss")] == (4, 6)
    assert [e.step for e in cb.run.evaluation_steps("validation")] == [4, 6]
    assert cb.run.refresh().status == "finished"
    cb.close()


DISTRIBUTED = """
import sys, json, math
import torch.distributed as dist
import torch.multiprocessing as mp
from transformers import TrainerControl, TrainerState, TrainingArguments
from evalstream.integrations.transformers import EvalstreamCallback

target, port, out = sys.argv[1], sys.argv[2], sys.argv[3]

def work(rank):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    # Rank 1 is given an address where nothing listens: it must never call it.
    cb = EvalstreamCallback(target if rank == 0 else "127.0.0.1:9", project="hf", name="ddp",
                            stop_on=("overfitting",), timeout=2.0)
    args = TrainingArguments(output_dir=out, report_to=[])
    state = TrainerState(is_world_process_zero=rank == 0, is_local_process_zero=rank == 0)
    cb.on_train_begin(args, state, TrainerControl())
    if rank == 0:
        for step in range(1, 121):
            cb.run.log(step, loss=2.0 * math.exp(-step / 40))
        for step, v in zip(range(20, 121, 20), (1.2, 1.0, 1.1, 1.2, 1.3, 1.4)):
            cb.run.log(step, split="validation", loss=v)
    state.global_step = 120
    control = TrainerControl()
    cb.on_evaluate(args, state, control, metrics={"eval_loss": 1.4})
    cb.on_train_end(args, state, control)
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump({"stop": control.should_training_stop, "run": cb.run is not None}, f)
    dist.destroy_process_group()

if __name__ == "__main__":
    mp.start_processes(work, nprocs=2, start_method="fork")
"""


def test_distributed_decision_is_the_main_process(live_server: LiveServer, tmp_path: Path) -> None:
    import json
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "ddp.py"
    script.write_text(DISTRIBUTED)
    done = subprocess.run(
        [sys.executable, str(script), live_server.target, str(port), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks == [{"stop": True, "run": True}, {"stop": True, "run": False}]


def test_server_without_update_run_warns_once(
    live_server: LiveServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from evalstream.errors import Unimplemented

    calls = []

    def old_server(self: Run, **changes: Any) -> None:
        calls.append(changes)
        raise Unimplemented("Method not implemented!", code="UNIMPLEMENTED")

    monkeypatch.setattr(Run, "update", old_server)
    cb = EvalstreamCallback(live_server.target, project="hf", name="old")
    with caplog.at_level("WARNING", logger="evalstream.integrations.transformers"):
        make_trainer(tmp_path, cb, save_strategy="steps", save_steps=2).train()
    assert cb.run is not None and cb.run.refresh().status == "finished"
    assert len(calls) == 1  # not asked again after UNIMPLEMENTED
    warned = [r for r in caplog.records if "no UpdateRun" in r.message]
    assert len(warned) == 1
