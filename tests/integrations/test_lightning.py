"""EvalstreamLogger and EvalstreamEarlyStopping with a real tiny Lightning Trainer and server."""

from __future__ import annotations

import logging
import math
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("lightning")

import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402
from evalstream import Client  # noqa: E402
from evalstream.errors import InvalidArgument  # noqa: E402
from evalstream.integrations.lightning import (  # noqa: E402
    EvalstreamEarlyStopping,
    EvalstreamLogger,
    flatten_hyperparameters,
    route_metric,
)
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.loggers.logger import DummyExperiment  # noqa: E402
from lightning.pytorch.trainer.states import TrainerFn  # noqa: E402
from lightning.pytorch.utilities.rank_zero import rank_zero_only  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

STEPS_PER_EPOCH = 4


class Tiny(pl.LightningModule):
    """A linear regressor; `nan_from_epoch` makes its training loss NaN from that epoch on."""

    def __init__(self, lr: float = 0.05, nan_from_epoch: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(3, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        if self.hparams.nan_from_epoch is not None and self.current_epoch >= (
            self.hparams.nan_from_epoch
        ):
            loss = loss * float("nan")
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        pred = self.net(x)
        self.log("val_loss", torch.nn.functional.mse_loss(pred, y))
        self.log("val/mae", (pred - y).abs().mean())

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _data() -> DataLoader[Any]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4 * STEPS_PER_EPOCH, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    return DataLoader(TensorDataset(x, y), batch_size=4)


def _trainer(logger: Any, *, epochs: int = 2, callbacks: list[Any] | None = None, **kw: Any):
    options: dict[str, Any] = {
        "max_epochs": epochs,
        "logger": logger,
        "callbacks": callbacks or [],
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "log_every_n_steps": 1,
        "num_sanity_val_steps": 0,
        "accelerator": "cpu",
        "devices": 1,
    }
    options.update(kw)
    return pl.Trainer(**options)


@pytest.fixture
def client(live_server: Any) -> Iterator[Client]:
    with Client(live_server.target) as c:
        yield c


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)


def _series(client: Client, run_id: str) -> dict[tuple[str, str], dict[int, float]]:
    return {
        (s.split, s.name): dict(zip(s.steps, s.values, strict=True)) for s in client.curves(run_id)
    }


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("train_loss", ("train", "loss")),
        ("train/loss", ("train", "loss")),
        ("training_loss", ("train", "loss")),
        ("loss", ("train", "loss")),
        ("train_loss_step", ("train", "loss")),
        ("train_loss_epoch", ("train", "loss_epoch")),
        ("val_loss", ("validation", "loss")),
        ("valid/loss", ("validation", "loss")),
        ("validation_loss", ("validation", "loss")),
        ("loss/val", ("validation", "loss")),
        ("test_loss", ("test", "loss")),
        ("val/bbox_f1@0.5", ("validation", "bbox_f1@0.5")),
        ("lr-Adam", ("train", "learning_rate")),
        ("lr", ("train", "learning_rate")),
        ("lr-Adam/pg1", ("train", "lr-Adam/pg1")),
        ("grad_norm", ("train", "grad_norm")),
        ("trainer_state", ("train", "trainer_state")),
        ("epoch", None),
        ("step", None),
    ],
)
def test_route_metric(key: str, expected: tuple[str, str] | None) -> None:
    assert route_metric(key) == expected


def test_logger_curves_splits_steps_hyperparameters_and_status(client: Client) -> None:
    logger = EvalstreamLogger(client, project="lt", name="fit", hyperparameters={"batch_size": 4})
    trainer = _trainer(logger, epochs=2)
    trainer.fit(Tiny(lr=0.05), _data(), _data())
    run_id = logger.version
    info = client.get_run(run_id).info
    assert info.status == "finished"
    assert info.name == "fit" and logger.name == "fit"
    # The module's save_hyperparameters() come after the Trainer opened the run: they are
    # added to its hyperparameters (nan_from_epoch=None is skipped), not to its summary.
    assert dict(info.hyperparameters) == {"batch_size": 4, "lr": 0.05}
    assert dict(info.summary) == {}
    assert [r.id for r in client.list_runs("lt", hyperparameters={"lr": 0.05})] == [run_id]
    series = _series(client, run_id)
    # Train loss at every optimizer step (trainer.global_step after it: 1..8).
    assert sorted(series[("train", "loss")]) == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    # Validation loss once per epoch, at the step the epoch ended.
    assert sorted(series[("validation", "loss")]) == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert ("train", "epoch") not in series and ("validation", "mae") not in series
    # The non-loss validation value is a checkpoint metric at those steps.
    steps = {e.step: e.metrics for e in client.evaluation_steps(run_id, split="validation")}
    assert sorted(steps) == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert steps[STEPS_PER_EPOCH]["mae"] > 0
    # test after fit: the test split, and the run finished again.
    trainer.test(trainer.lightning_module, _data(), verbose=False)
    assert ("test", "loss") in _series(client, run_id)
    assert client.get_run(run_id).info.status == "finished"


def test_logger_failed_when_training_raises(client: Client) -> None:
    class Boom(Tiny):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            if self.global_step == 2:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

    logger = EvalstreamLogger(client, project="lt", name="boom")
    with pytest.raises(RuntimeError, match="boom"):
        _trainer(logger).fit(Boom(), _data(), _data())
    info = client.get_run(logger.version).info
    assert info.status == "failed"
    assert sorted(_series(client, info.id)[("train", "loss")]) == [1, 2]


@pytest.mark.parametrize(("status", "expected"), [("success", "finished"), ("aborted", "killed")])
def test_logger_finalize_status(client: Client, status: str, expected: str) -> None:
    logger = EvalstreamLogger(client, project="lt", name=f"final-{status}")
    logger.log_metrics({"train_loss": 1.0}, step=3)
    logger.finalize(status)
    assert client.get_run(logger.version).info.status == expected


def test_logger_hyperparameters_flattened_before_the_run_opens(client: Client) -> None:
    logger = EvalstreamLogger(client, project="lt", name="hp")
    logger.log_hyperparams(
        {"lr": 0.1, "net": {"depth": 3, "act": "relu"}, "sizes": [1, 2], "none": None}
    )
    info = client.get_run(logger.version).info
    assert dict(info.hyperparameters) == {
        "lr": 0.1,
        "net/depth": 3,
        "net/act": "relu",
        "sizes": "[1, 2]",
    }


def test_logger_changed_hyperparameter_kept_in_summary_with_one_warning(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    logger = EvalstreamLogger(client, project="lt", name="hp-changed", hyperparameters={"lr": 0.1})
    with caplog.at_level(logging.WARNING, logger="evalstream.integrations.lightning"):
        _trainer(logger, epochs=1).fit(Tiny(lr=0.05), _data(), _data())
        info = client.get_run(logger.version).info
        assert dict(info.hyperparameters) == {"lr": 0.1}
        assert dict(info.summary) == {"lr": 0.05} and info.status == "finished"
        # Again with another changed value and a new key: the new key is a hyperparameter.
        logger.log_hyperparams({"lr": 0.07, "epochs": 1, "nan": math.nan})
    info = client.get_run(logger.version).info
    assert dict(info.hyperparameters) == {"lr": 0.1, "epochs": 1}
    assert info.summary["lr"] == 0.07 and math.isnan(info.summary["nan"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "lr 0.1 -> 0.05" in warnings[0] and "summary" in warnings[0]


def test_logger_hyperparameter_added_elsewhere_is_read_again(client: Client) -> None:
    logger = EvalstreamLogger(client, project="lt", name="hp-elsewhere")
    run_id = logger.version  # opened: what this logger knows of the run is now stale
    client.get_run(run_id).update(hyperparameters={"seed": 4, "bs": 8})
    logger.log_hyperparams({"seed": 5, "bs": 8, "depth": 2})
    info = client.get_run(run_id).info
    assert dict(info.hyperparameters) == {"seed": 4, "bs": 8, "depth": 2}
    assert dict(info.summary) == {"seed": 5}


def test_flatten_hyperparameters_numbers_of_tensors_and_numpy() -> None:
    import numpy as np

    flat = flatten_hyperparameters(
        Namespace(
            lr=torch.tensor(0.5),
            steps=np.int64(7),
            flag=np.bool_(True),
            weights=torch.tensor([1.0, 2.0]),
            opt=Namespace(name="adamw", betas=(0.9, 0.99)),
        )
    )
    assert flat == {
        "lr": 0.5,
        "steps": 7,
        "flag": True,
        "weights": "tensor([1., 2.])",
        "opt/name": "adamw",
        "opt/betas": "(0.9, 0.99)",
    }
    assert type(flat["steps"]) is int


def test_logger_records_checkpoint_paths_by_step(client: Client, tmp_path: Path) -> None:
    logger = EvalstreamLogger(client, project="lt", name="ckpt")
    ckpt_dir = tmp_path / "ckpt"
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, save_top_k=-1, save_last=True)
    trainer = _trainer(logger, epochs=2, callbacks=[checkpoint], enable_checkpointing=True)
    trainer.fit(Tiny(), _data(), _data())
    verdict = client.get_run(logger.version).verdict()
    # last.ckpt is written at the same steps and overwritten later: the step's own file is kept.
    paths = {c.step: c.path for c in verdict.checkpoints}
    assert paths == {
        STEPS_PER_EPOCH: str(ckpt_dir / "epoch=0-step=4.ckpt"),
        2 * STEPS_PER_EPOCH: str(ckpt_dir / "epoch=1-step=8.ckpt"),
    }
    es = verdict.early_stopping
    assert es.best_step in paths and es.best_checkpoint_path == paths[es.best_step]


def test_early_stopping_stops_a_diverged_run(client: Client) -> None:
    logger = EvalstreamLogger(client, project="lt", name="nan")
    stopper = EvalstreamEarlyStopping(stop_on=("diverged",), early_stopping=False)
    trainer = _trainer(logger, epochs=5, callbacks=[stopper])
    trainer.fit(Tiny(nan_from_epoch=1), _data(), _data())
    assert trainer.should_stop
    # Epoch 1's losses are NaN: stopped at its validation, not at epoch 4.
    assert stopper.stopped_epoch == 1
    assert stopper.stopped_step == 2 * STEPS_PER_EPOCH
    assert trainer.global_step == 2 * STEPS_PER_EPOCH
    assert stopper.decision is not None and stopper.decision.state == "diverged"
    assert "diverged" in stopper.decision.reason
    values = _series(client, logger.version)[("train", "loss")]
    assert math.isnan(values[2 * STEPS_PER_EPOCH]) and not math.isnan(values[1])


def test_early_stopping_does_not_stop_a_healthy_run(client: Client) -> None:
    logger = EvalstreamLogger(client, project="lt", name="fine")
    stopper = EvalstreamEarlyStopping(stop_on=("diverged",), early_stopping=False)
    trainer = _trainer(logger, epochs=2, callbacks=[stopper])
    trainer.fit(Tiny(), _data(), _data())
    assert stopper.stopped_epoch is None and trainer.current_epoch == 2
    assert stopper.decision is not None and stopper.decision.state != "diverged"


def test_early_stopping_without_evalstream_logger_fails_at_setup() -> None:
    stopper = EvalstreamEarlyStopping(stop_on=("diverged",))
    trainer = _trainer(False, epochs=1, callbacks=[stopper])
    with pytest.raises(ValueError, match=r"trainer's loggers are none: pass Trainer\(logger="):
        trainer.fit(Tiny(), _data(), _data())


def test_early_stopping_unknown_stop_on() -> None:
    with pytest.raises(ValueError, match="'healthy' is not a state to stop on"):
        EvalstreamEarlyStopping(stop_on=("healthy",))


def test_logger_bad_target_fails_fast_with_the_target_in_the_message() -> None:
    logger = EvalstreamLogger("127.0.0.1:1", project="lt", name="nowhere", timeout=2.0)
    with pytest.raises(
        RuntimeError,
        match=r"could not open run lt/nowhere at 127.0.0.1:1: UNAVAILABLE.*; check the target",
    ):
        _trainer(logger, epochs=1).fit(Tiny(), _data(), _data())


@pytest.mark.parametrize("live_server", [{"admin_token": "a" * 40}], indirect=True)
def test_logger_missing_token_fails_fast_naming_the_token(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EVALSTREAM_TOKEN", raising=False)
    logger = EvalstreamLogger(live_server.target, project="lt", name="no-token")
    with pytest.raises(RuntimeError, match=r"UNAUTHENTICATED.*; check the token \(token="):
        _trainer(logger, epochs=1).fit(Tiny(), _data(), _data())


def test_logger_bad_verdict_config_is_the_servers_invalid_argument(client: Client) -> None:
    logger = EvalstreamLogger(client, project="lt", name="badcfg", verdict_config={"patience": -1})
    with pytest.raises(InvalidArgument, match="patience must be >= 0"):
        _ = logger.version


def test_logger_client_with_client_options_is_a_type_error(client: Client) -> None:
    with pytest.raises(TypeError, match=r"client options \['token'\] given with a Client"):
        EvalstreamLogger(client, project="lt", token="t")
    EvalstreamLogger(client, project="lt", chunk_points=100)  # a run logger option: fine


def test_logger_nonzero_rank_does_not_talk(monkeypatch: pytest.MonkeyPatch) -> None:
    # No server at this address: any call would fail (RuntimeError from opening the run).
    logger = EvalstreamLogger("127.0.0.1:1", project="lt", name="rank1", timeout=2.0)
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"train_loss": 1.0, "val_acc": 0.5}, step=1)
    logger.after_save_checkpoint(ModelCheckpoint())
    assert logger.score_boxes(1, []) is None
    logger.finalize("success")
    assert logger.version == ""
    assert isinstance(logger.experiment, DummyExperiment) and logger.run is None
    assert logger._client is None


def test_logger_server_gone_during_training_is_a_warning(
    live_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client(live_server.target, timeout=2.0)
    logger = EvalstreamLogger(client, project="lt", name="gone", flush_timeout=1.0)
    logger.log_metrics({"train_loss": 1.0}, step=1)
    run_id = logger.version
    live_server.server.stop(0).wait()
    with caplog.at_level(logging.WARNING, "evalstream.integrations.lightning"):
        logger.log_metrics({"train_loss": 0.9, "val_acc": 0.5}, step=2)
        logger.finalize("success")
    assert "log_checkpoint failed, training goes on" in caplog.text
    assert "finish failed, training goes on" in caplog.text
    assert run_id and logger.run is not None
    client.close(flush_timeout=0.1)


def test_logger_nonfinite_checkpoint_metric_dropped_the_rest_kept(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    logger = EvalstreamLogger(client, project="lt", name="nan-metric")
    with caplog.at_level(logging.WARNING, "evalstream.integrations.lightning"):
        logger.log_metrics({"val_acc": float("nan"), "val_f1": 0.25, "val_loss": math.inf}, step=4)
    assert "validation acc not finite" in caplog.text
    steps = {e.step: dict(e.metrics) for e in client.evaluation_steps(logger.version)}
    assert steps == {4: {"f1": 0.25}}
    logger.finalize("success")
    assert math.isinf(_series(client, logger.version)[("validation", "loss")][4])


class _Strategy:
    def __init__(self, others_say: bool) -> None:
        self.others_say = others_say
        self.calls: list[tuple[bool, bool]] = []

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:  # noqa: A002
        self.calls.append((decision, all))
        return decision or self.others_say


def _fake_trainer(logger: EvalstreamLogger, *, rank0: bool, others_say: bool) -> Any:
    return SimpleNamespace(
        state=SimpleNamespace(fn=TrainerFn.FITTING),
        sanity_checking=False,
        fast_dev_run=False,
        is_global_zero=rank0,
        loggers=[logger],
        strategy=_Strategy(others_say),
        should_stop=False,
        current_epoch=3,
        global_step=12,
    )


def test_early_stopping_nonzero_rank_takes_rank0_decision_without_the_server() -> None:
    # No server at this address: reading a verdict would raise; rank 1 never does.
    logger = EvalstreamLogger("127.0.0.1:1", project="lt", name="rank1", timeout=2.0)
    stopper = EvalstreamEarlyStopping(stop_on=("diverged",))
    trainer = _fake_trainer(logger, rank0=False, others_say=True)
    stopper.on_validation_end(trainer, None)
    # Its own vote is False, reduced with all=False ("any process"): rank 0 said stop.
    assert trainer.strategy.calls == [(False, False)]
    assert trainer.should_stop and (stopper.stopped_epoch, stopper.stopped_step) == (3, 12)
    assert logger._client is None and stopper.decision is None


def test_early_stopping_checks_on_train_epoch_end_only_when_asked(client: Client) -> None:
    logger = EvalstreamLogger(client, project="lt", name="epoch-end")
    logger.log_metrics({"train_loss": float("nan")}, step=5)
    stopper = EvalstreamEarlyStopping(stop_on=("diverged",), check_on="train_epoch_end")
    trainer = _fake_trainer(logger, rank0=True, others_say=False)
    stopper.on_validation_end(trainer, None)
    assert trainer.strategy.calls == [] and not trainer.should_stop
    stopper.on_train_epoch_end(trainer, None)
    assert trainer.strategy.calls == [(True, False)] and trainer.should_stop
    assert stopper.decision is not None and stopper.decision.step == 5


def test_early_stopping_patience_on_a_logged_checkpoint_metric(client: Client) -> None:
    # val_acc is the checkpoint metric "acc": the run's monitor names it validation/acc.
    logger = EvalstreamLogger(
        client,
        project="lt",
        name="patience",
        verdict_config={"monitor": "validation/acc", "patience": 2, "warmup_steps": 0},
    )
    for step in range(1, 31):
        logger.log_metrics({"train_loss": 1.0 / step}, step=step)
    stopper = EvalstreamEarlyStopping()  # early_stopping=True, no state to stop on
    trainer = _fake_trainer(logger, rank0=True, others_say=False)
    for step, acc in ((10, 0.9), (20, 0.8), (30, 0.7)):
        logger.log_metrics({"val_acc": acc}, step=step)
        stopper.on_validation_end(trainer, None)
        assert trainer.should_stop is (step == 30), step
    assert stopper.decision is not None
    assert stopper.decision.best_step == 10
    assert stopper.decision.reason == (
        "early stopping at step 30: validation/acc has not improved in 2 evaluations; "
        "keep the checkpoint of step 10"
    )
