"""PyTorch Lightning: `EvalstreamLogger` and `EvalstreamEarlyStopping`.

``Trainer(logger=EvalstreamLogger(project="grounding"), callbacks=[EvalstreamEarlyStopping(
stop_on=("diverged",))])`` streams every logged value to a run and stops training
at the server's verdict. Modelled on Lightning's own loggers (``MLFlowLogger``:
the run created lazily on global rank 0, ``rank_zero_only`` everywhere) and on
its ``EarlyStopping`` (checked at ``on_validation_end``, the decision reduced
with ``trainer.strategy.reduce_boolean_decision``).

Metric keys are routed by `route_metric`: a leading ``train``/``val``/``test``
word (``train_loss``, ``val/loss``, ``validation_loss``) or a trailing
``/train``/``/val`` one picks the split, anything else goes to train. Losses
become curves; the other values of a validation or test evaluation become that
step's checkpoint metrics.
"""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
import weakref
from argparse import Namespace
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

try:
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import Logger
    from lightning.pytorch.loggers.logger import rank_zero_experiment
    from lightning.pytorch.trainer.states import TrainerFn
    from lightning.pytorch.utilities.rank_zero import rank_zero_only
except ImportError:  # pragma: no cover - the standalone package, same API
    try:
        from pytorch_lightning.callbacks import Callback  # type: ignore[no-redef,assignment]
        from pytorch_lightning.loggers import Logger  # type: ignore[no-redef,assignment]
        from pytorch_lightning.loggers.logger import (  # type: ignore[no-redef,assignment]
            rank_zero_experiment,
        )
        from pytorch_lightning.trainer.states import TrainerFn  # type: ignore[no-redef,assignment]
        from pytorch_lightning.utilities.rank_zero import rank_zero_only  # type: ignore[no-redef,assignment]
    except ImportError:
        raise ImportError(
            "evalstream.integrations.lightning needs PyTorch Lightning: "
            "pip install 'evalstream[lightning]'"
        ) from None

from evalstream._client import Client
from evalstream._runs import Run
from evalstream._types import BoxReport, ImageBoxes, TextReport
from evalstream.errors import (
    DeadlineExceeded,
    EvalstreamError,
    FailedPrecondition,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from evalstream.integrations._core import (
    EvaluationScorer,
    StopDecision,
    StopRule,
    connect,
    open_run,
    split_options,
)

__all__ = ["EvalstreamEarlyStopping", "EvalstreamLogger", "route_metric"]

_log = logging.getLogger("evalstream.integrations.lightning")

_SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
}
#: Keys Lightning adds to every logged dict that are not measurements.
_SKIPPED_KEYS = frozenset({"epoch", "step"})
_HEAD = re.compile(r"^(train|training|val|valid|validation|test)[/_](.+)$")
_TAIL = re.compile(r"^(.+)/(train|training|val|valid|validation|test)$")
#: Lightning's LearningRateMonitor key ("lr-Adam") or a bare "lr": the server derives
#: initial and final learning rates from the train split's "learning_rate".
_LR = re.compile(r"^lr(-[A-Za-z0-9]+)?$")


def route_metric(key: str) -> tuple[str, str] | None:
    """The split and series name a logged key goes to; None for ``epoch`` and ``step``.

    A leading split word followed by ``_`` or ``/``, or a trailing ``/`` and a
    split word, picks the split (``train``/``training``; ``val``/``valid``/
    ``validation``; ``test``); any other key is a training value under its own
    name. Lightning's ``_step`` suffix (``self.log(..., on_step=True,
    on_epoch=True)``) is dropped, so the per-step values are the curve; the
    ``_epoch`` averages keep their suffix. ``lr`` and ``lr-<Optimizer>``
    (LearningRateMonitor) become ``learning_rate``.

    Example:
        >>> route_metric("train_loss"), route_metric("val/loss"), route_metric("loss/validation")
        (('train', 'loss'), ('validation', 'loss'), ('validation', 'loss'))
        >>> route_metric("train_loss_step"), route_metric("train_loss_epoch")
        (('train', 'loss'), ('train', 'loss_epoch'))
        >>> route_metric("val_acc"), route_metric("lr-Adam"), route_metric("epoch")
        (('validation', 'acc'), ('train', 'learning_rate'), None)
    """
    if key in _SKIPPED_KEYS:
        return None
    split, name = "train", key
    head = _HEAD.match(key)
    tail = _TAIL.match(key)
    if head:
        split, name = _SPLIT_WORDS[head.group(1)], head.group(2)
    elif tail:
        split, name = _SPLIT_WORDS[tail.group(2)], tail.group(1)
    if name.endswith("_step") and len(name) > len("_step"):
        name = name[: -len("_step")]
    if split == "train" and _LR.match(name):
        name = "learning_rate"
    return split, name


def is_loss(name: str) -> bool:
    """Whether a series is a loss (a curve on its split) rather than a checkpoint metric."""
    return "loss" in name.lower()


def flatten_hyperparameters(params: Mapping[str, Any] | Namespace) -> dict[str, Any]:
    """Hyperparameters as the server's values: nested keys joined with "/".

    bool, int, float and str are kept; None is skipped; a one-element tensor
    or numpy scalar becomes its number; anything else (lists, tuples, objects)
    becomes its ``str``.

    Example:
        >>> flatten_hyperparameters({"lr": 0.1, "net": {"depth": 3}, "tags": ["a"], "x": None})
        {'lr': 0.1, 'net/depth': 3, 'tags': "['a']"}
    """
    if isinstance(params, Namespace):
        params = vars(params)
    flat: dict[str, Any] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, Namespace):
            value = vars(value)
        if isinstance(value, Mapping):
            for k, v in value.items():
                visit(f"{prefix}/{k}" if prefix else str(k), v)
            return
        if value is None:
            return
        if isinstance(value, bool | int | float | str):
            flat[prefix] = value
        elif hasattr(value, "item") and _one_element(value):
            item = value.item()
            flat[prefix] = item if isinstance(item, bool | int | float | str) else str(value)
        else:
            flat[prefix] = str(value)

    visit("", params)
    return flat


def _one_element(value: Any) -> bool:
    """Whether a tensor (``numel()``) or numpy value (``size``) holds exactly one number."""
    numel = getattr(value, "numel", None)
    size = numel() if callable(numel) else getattr(value, "size", None)
    return size == 1


def _same_hyperparameter(a: Any, b: Any) -> bool:
    """Whether `b` is the value `a` the run has, as the server compares them: numbers
    numerically (``8 == 8.0``, NaN equal to NaN), a bool never equal to a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


_UNROUTED = object()
_FINAL_STATUS = {"success": "finished", "finished": "finished", "failed": "failed"}


class EvalstreamLogger(Logger):
    """A Lightning logger that streams a run's curves to an evalstream server.

    Only global rank 0 talks to the server. The run is created (or resumed:
    `run_id`, ``EVALSTREAM_RUN_ID``, or ``resume=True`` by `name`) the first
    time it is needed, which in a Trainer is its setup. ``log_metrics`` never
    waits for the server: the points stream in the background. Server errors
    during training are logged as warnings and training goes on; failing to open
    the run raises at once: a RuntimeError naming the target for an unreachable
    server or a refused token, the server's error (e.g. InvalidArgument for a bad
    `verdict_config`) otherwise.

    Args:
        target: A `Client`, an address, or None (``EVALSTREAM_TARGET``, else
            ``localhost:50051``).
        project: The run's project.
        name: The run's name (default ``lightning-<time>-<random>``).
        run_id: A run to resume (else ``EVALSTREAM_RUN_ID``).
        resume: Reuse the run named `name` when it exists.
        model: The model's name, stored with the run.
        task: ``phrase_grounding``, ``vqa``, ``other`` or "".
        hyperparameters: Hyperparameters the run is created with (compared and
            filtered on by the server).
        verdict_config: The run's verdict thresholds (e.g. ``{"patience": 3}``).
        flush_timeout: Seconds to wait for the points at a stop check and at
            `finalize`.
        **options: Run logger options (``chunk_points``, ``max_buffer_points``,
            ``buffer_timeout``, ``on_full``, ...) and `Client` options (``token``,
            ``timeout``, ...).

    Example:
        >>> logger = EvalstreamLogger("localhost:50051", project="grounding", name="run-1")
        >>> logger.name
        'run-1'
    """

    def __init__(
        self,
        target: str | Client | None = None,
        *,
        project: str,
        name: str | None = None,
        run_id: str | None = None,
        resume: bool = False,
        model: str = "",
        task: str = "",
        hyperparameters: Mapping[str, Any] | None = None,
        verdict_config: Mapping[str, Any] | None = None,
        flush_timeout: float = 30.0,
        **options: Any,
    ) -> None:
        super().__init__()
        self._client_options, self._run_options = split_options(
            target, options, owner="EvalstreamLogger"
        )
        self._target = target
        self._project = project
        self._name = name or f"lightning-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self._run_id = run_id
        self._resume = resume
        self._model = model
        self._task = task
        self._hyperparameters = flatten_hyperparameters(hyperparameters or {})
        if verdict_config is not None:
            self._run_options["verdict_config"] = dict(verdict_config)
        self.flush_timeout = flush_timeout
        self._client: Client | None = None
        self._owns_client = False
        self._run: Run | None = None
        self._scorer: EvaluationScorer | None = None
        self._last_step = 0
        self._trainer: weakref.ref[Any] | None = None
        self._saved: dict[int, str] = {}
        self._routes: dict[str, Any] = {}  # route_metric by key: the same keys every step
        self._warned: set[str] = set()

    # -- the Logger API ----------------------------------------------------------

    @property
    def name(self) -> str:
        """The run's name."""
        return self._run.info.name if self._run is not None else self._name

    @property
    def version(self) -> str:
        """The run's id (creates the run on rank 0; "" on the other ranks)."""
        if getattr(rank_zero_only, "rank", 0) != 0:
            return ""
        return self._open().id

    @property
    @rank_zero_experiment
    def experiment(self) -> Run:
        """The evalstream `Run` (a no-op stand-in on ranks other than 0)."""
        return self._open()

    @property
    def run(self) -> Run | None:
        """The run once opened (None before, and on ranks other than 0)."""
        return self._run

    @rank_zero_only
    def log_hyperparams(
        self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Records hyperparameters (flattened by `flatten_hyperparameters`).

        Before the run exists they are created with it. A Trainer opens the run
        in its setup (ModelCheckpoint asks for `version`, the run id), before it
        logs the module's ``save_hyperparameters()``: those are then added to the
        run's hyperparameters (``Run.update(hyperparameters=...)``), so that
        CompareRuns and ListRuns filters see them. A run's hyperparameters do not
        change during a run: a key the run already has with another value (and a
        NaN or infinite float) is kept in the run's summary instead, with one
        warning; training goes on.
        """
        flat = flatten_hyperparameters(params)
        if self._run is None:
            self._hyperparameters.update(flat)
            return
        self._add_hyperparameters(self._run, flat)

    def _add_hyperparameters(self, run: Run, flat: dict[str, Any]) -> None:
        """Adds `flat` to the run's hyperparameters; what cannot be one goes to the summary.

        The run's hyperparameters are those of ``run.info``; when the server knows a
        value this process does not (another process added it), it refuses the
        update (FAILED_PRECONDITION): the run is read again and the update retried.
        """
        for attempt in range(2):
            have = run.info.hyperparameters
            added, summary, changed = {}, {}, []
            for key, value in flat.items():
                if key in have:
                    if not _same_hyperparameter(have[key], value):
                        summary[key] = value
                        changed.append(f"{key} {have[key]!r} -> {value!r}")
                elif isinstance(value, float) and not math.isfinite(value):
                    summary[key] = value
                    changed.append(f"{key} = {value!r} is not finite")
                else:
                    added[key] = value
            if not added and not summary:
                return
            try:
                run.update(hyperparameters=added, summary=summary)
            except FailedPrecondition as exc:
                if attempt == 0:
                    try:
                        run.refresh()
                        continue
                    except EvalstreamError:
                        pass
                self._warn("hyperparameters", exc)
                self._update(summary={**added, **summary})
                return
            except (EvalstreamError, ValueError) as exc:
                self._warn("update", exc)
                return
            if changed:
                level = logging.DEBUG if "hyperparameters:kept" in self._warned else logging.WARNING
                self._warned.add("hyperparameters:kept")
                _log.log(
                    level,
                    "evalstream: hyperparameters %s of run %s kept in its summary instead: a "
                    "run's hyperparameters do not change during a run (create a new run to "
                    "compare runs by the new values); training goes on",
                    "; ".join(changed),
                    run.id,
                )
            return

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Streams logged values by `route_metric`; never waits for the server.

        In a Trainer the values are recorded at ``trainer.global_step``, the
        optimizer steps done, as the checkpoint files (``step=N``) and the
        scorer count them (Lightning hands its loggers that count before the
        step, one less during fit); called by hand, at `step` (else the last).
        Losses are curves on their split. Other validation and test values are
        that step's checkpoint metrics (one call per evaluation); other train
        values (learning rate, grad norm, accuracy) are train curves.
        """
        self._last_step = step = self._step(step)
        curves: dict[str, dict[str, float]] = {}
        checkpoint: dict[str, dict[str, float]] = {}
        for key, raw in metrics.items():
            route = self._routes.get(key, _UNROUTED)
            if route is _UNROUTED:
                route = self._routes[key] = route_metric(str(key))
            if route is None:
                continue
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue
            split, name = route
            target = curves if split == "train" or is_loss(name) else checkpoint
            target.setdefault(split, {})[name] = value
        if not curves and not checkpoint:
            return
        run = self._open()
        for split, values in curves.items():
            try:
                run.log(step, split=split, **values)
            except (EvalstreamError, ValueError) as exc:
                self._warn("log", exc)
        for split, values in checkpoint.items():
            bad = sorted(k for k, v in values.items() if not math.isfinite(v))
            if bad:
                # The server keeps only finite checkpoint metrics: drop these, keep the rest.
                self._warn("log_checkpoint", ValueError(f"{split} {', '.join(bad)} not finite"))
                values = {k: v for k, v in values.items() if k not in bad}
                if not values:
                    continue
            try:
                run.log_checkpoint(step, values, split=split)
            except (EvalstreamError, ValueError) as exc:
                self._warn("log_checkpoint", exc)

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Not a graph: Lightning calls it with the module at the start of fit, validate
        and test, which tells the logger its Trainer (whose ``global_step`` it records at)."""
        self.attach(getattr(model, "_trainer", None))

    def attach(self, trainer: Any) -> None:
        """Records values at `trainer`'s ``global_step`` from now on (see `log_metrics`)."""
        if trainer is not None:
            self._trainer = weakref.ref(trainer)

    def _step(self, step: int | None) -> int:
        trainer = self._trainer() if self._trainer is not None else None
        if trainer is not None:
            return int(trainer.global_step)
        return self._last_step if step is None else int(step)

    def save(self) -> None:
        """Nothing to do: points stream in the background (`flush` waits for them)."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Flushes and sets the run's status.

        Lightning's ``"success"`` (and ``"finished"``, a SLURM requeue) mark the
        run finished, ``"failed"`` (training raised or was interrupted) failed,
        any other status killed. Called again (``fit`` then ``test``), the run
        is set again.
        """
        if self._run is None:
            return
        if self._scorer is not None:
            try:
                self._scorer.wait(self.flush_timeout)
            except Exception as exc:  # noqa: BLE001 - a scoring failure must not hide the status
                self._warn("scoring", exc)
        try:
            self._run.finish(_FINAL_STATUS.get(status, "killed"), timeout=self.flush_timeout)
        except EvalstreamError as exc:
            self._warn("finish", exc)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Records where the checkpoint just saved lies, by its step (``Run.update``).

        The step and path are those ModelCheckpoint just wrote; of two files
        saved at one step (a top-k file and ``last.ckpt``), the first is kept,
        since ``last.ckpt`` is overwritten later.
        """
        step = getattr(checkpoint_callback, "_last_global_step_saved", None)
        path = getattr(checkpoint_callback, "_last_checkpoint_saved", "") or getattr(
            checkpoint_callback, "last_model_path", ""
        )
        if not path:
            return
        step = self._last_step if step is None else int(step)
        if step in self._saved:
            return
        self._saved[step] = str(path)
        self._open()
        self._update(saved_checkpoints={step: str(path)})

    # -- scoring an evaluation ---------------------------------------------------

    @property
    def scorer(self) -> EvaluationScorer:
        """The `EvaluationScorer` of the run's validation checkpoints (rank 0 only)."""
        if self._scorer is None:
            self._scorer = EvaluationScorer(self._open(), split="validation")
        return self._scorer

    @rank_zero_only
    def score_boxes(
        self, step: int, images: Iterable[ImageBoxes], **options: Any
    ) -> BoxReport | None:
        """Scores an evaluation's predicted boxes as the checkpoint at `step`.

        Call it from ``on_validation_epoch_end`` with ``self.global_step``; on
        ranks other than 0 it does nothing (gather the predictions to rank 0
        first). A server error is a warning and returns None.
        """
        try:
            return self.scorer.score_boxes(step, images, **options)  # type: ignore[no-any-return]
        except EvalstreamError as exc:
            self._warn("score_boxes", exc)
            return None

    @rank_zero_only
    def score_text(
        self,
        step: int,
        predictions: Sequence[str],
        references: Sequence[str] | Sequence[Sequence[str]],
        **options: Any,
    ) -> TextReport | None:
        """Scores an evaluation's generated answers as the checkpoint at `step`.

        `options` are those of `EvaluationScorer.score_text` (``questions``,
        ``image_uris``, ``specimen_ids``). As `score_boxes`, rank 0 only.
        """
        try:
            return self.scorer.score_text(  # type: ignore[no-any-return]
                step, predictions, references, **options
            )
        except EvalstreamError as exc:
            self._warn("score_text", exc)
            return None

    # -- helpers -------------------------------------------------------------------

    def decide(self, rule: StopRule, *, timeout: float | None = None) -> StopDecision | None:
        """Flushes, reads the run's verdict and applies `rule` (None on a server error)."""
        run = self._open()
        try:
            run.flush(self.flush_timeout if timeout is None else timeout)
        except EvalstreamError as exc:
            self._warn("flush", exc)
        try:
            return rule.decide(run.verdict())
        except EvalstreamError as exc:
            self._warn("verdict", exc)
            return None

    def close(self) -> None:
        """Closes the client this logger opened (after `finalize`)."""
        if self._client is not None and self._owns_client:
            self._client.close()
        self._client = None

    def _open(self) -> Run:
        if self._run is not None:
            return self._run
        if self._client is None:
            self._client, self._owns_client = connect(self._target, **self._client_options)
        try:
            self._run = open_run(
                self._client,
                project=self._project,
                name=self._name,
                run_id=self._run_id,
                resume=self._resume,
                model=self._model,
                task=self._task,
                hyperparameters=self._hyperparameters,
                run_options=self._run_options,
            )
        except (Unavailable, DeadlineExceeded, Unauthenticated, PermissionDenied) as exc:
            hint = (
                "the token (token= or EVALSTREAM_TOKEN)"
                if isinstance(exc, Unauthenticated | PermissionDenied)
                else "the target (target= or EVALSTREAM_TARGET) and that the server runs"
            )
            raise RuntimeError(
                f"evalstream: could not open run {self._project}/{self._name} at "
                f"{self._client.target}: {exc}; check {hint}"
            ) from exc
        _log.info("evalstream: logging to run %s (%s/%s)", self._run.id, self._project, self.name)
        return self._run

    def _update(self, **changes: Any) -> None:
        if self._run is None:
            return
        try:
            self._run.update(**changes)
        except (EvalstreamError, ValueError) as exc:
            self._warn("update", exc)

    def _warn(self, what: str, exc: BaseException) -> None:
        """A server error during training: a warning (once per kind), never an exception."""
        kind = f"{what}:{type(exc).__name__}"
        level = logging.DEBUG if kind in self._warned else logging.WARNING
        self._warned.add(kind)
        _log.log(level, "evalstream: %s failed, training goes on: %s", what, exc)


class EvalstreamEarlyStopping(Callback):
    """Stops training at the server's verdict, as Lightning's EarlyStopping does.

    After each validation (``check_on="validation_end"``) or training epoch
    (``"train_epoch_end"``), global rank 0 flushes the `EvalstreamLogger`'s run
    (so the verdict sees the epoch's points), reads the verdict and decides
    with `StopRule`; the decision is reduced across processes with
    ``trainer.strategy.reduce_boolean_decision`` and sets ``trainer.should_stop``.
    The reason, the step and the checkpoint to keep are logged and kept in
    `decision`, `stopped_epoch` and `stopped_step`. A server error is a
    warning and training goes on.

    Args:
        stop_on: Verdict states to stop on (e.g. ``("diverged", "overfitting")``).
        early_stopping: Also stop when the server's early stopping says so.
        check_on: ``"validation_end"`` or ``"train_epoch_end"``.
        flush_timeout: Seconds to wait for the points before reading the verdict
            (default the logger's).
        verbose: Log the reason at INFO when stopping.

    Example:
        >>> EvalstreamEarlyStopping(stop_on=("diverged",)).rule.stop_on
        ('diverged',)
        >>> EvalstreamEarlyStopping(check_on="epoch")
        Traceback (most recent call last):
        ...
        ValueError: check_on: 'epoch' is not one of validation_end, train_epoch_end
    """

    CHECK_ON = ("validation_end", "train_epoch_end")

    def __init__(
        self,
        stop_on: Iterable[str] = (),
        *,
        early_stopping: bool = True,
        check_on: str = "validation_end",
        flush_timeout: float | None = None,
        verbose: bool = True,
    ) -> None:
        super().__init__()
        if check_on not in self.CHECK_ON:
            raise ValueError(f"check_on: {check_on!r} is not one of {', '.join(self.CHECK_ON)}")
        self.rule = StopRule(stop_on, early_stopping=early_stopping)
        self.check_on = check_on
        self.flush_timeout = flush_timeout
        self.verbose = verbose
        self.decision: StopDecision | None = None
        self.stopped_epoch: int | None = None
        self.stopped_step: int | None = None

    @staticmethod
    def find_logger(trainer: Any) -> EvalstreamLogger:
        """The trainer's `EvalstreamLogger`; ValueError when it has none."""
        for logger in getattr(trainer, "loggers", ()):
            if isinstance(logger, EvalstreamLogger):
                return logger
        names = [type(lg).__name__ for lg in getattr(trainer, "loggers", ())] or ["none"]
        raise ValueError(
            "EvalstreamEarlyStopping reads the verdict of the EvalstreamLogger's run, but the "
            f"trainer's loggers are {', '.join(names)}: pass "
            "Trainer(logger=EvalstreamLogger(...), callbacks=[EvalstreamEarlyStopping(...)])"
        )

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.find_logger(trainer).attach(trainer)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self.check_on == "validation_end":
            self._check(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.check_on == "train_epoch_end":
            self._check(trainer)

    def _check(self, trainer: Any) -> None:
        if (
            not self.rule.active
            or trainer.state.fn != TrainerFn.FITTING
            or trainer.sanity_checking
            or trainer.fast_dev_run
        ):
            return
        stop = False
        if trainer.is_global_zero:
            logger = self.find_logger(trainer)
            decision = logger.decide(self.rule, timeout=self.flush_timeout)
            if decision is not None:
                self.decision = decision
                stop = decision.stop
        # Every process takes part, as in Lightning's EarlyStopping: rank 0 alone decides.
        stop = bool(trainer.strategy.reduce_boolean_decision(stop, all=False))
        trainer.should_stop = trainer.should_stop or stop
        if stop:
            self.stopped_epoch = trainer.current_epoch
            self.stopped_step = trainer.global_step
            if self.verbose and trainer.is_global_zero and self.decision is not None:
                _log.info(
                    "evalstream: stopping at epoch %d, step %d: %s",
                    trainer.current_epoch,
                    trainer.global_step,
                    self.decision.reason,
                )
