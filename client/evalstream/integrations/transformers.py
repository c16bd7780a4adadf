"""evalstream in a Hugging Face `Trainer`: one callback (``pip install evalstream[transformers]``).

    trainer = Trainer(..., callbacks=[EvalstreamCallback("localhost:50051", project="vqa")])

- train begin: the run is created (or resumed: ``EVALSTREAM_RUN_ID``, ``run_id=`` or
  ``resume=True`` by name) with the `TrainingArguments` as hyperparameters;
- each log: training values on the train split at ``state.global_step``, ``eval_*``
  values (prefix stripped) on the validation split, buffered and streamed in the
  background (never a blocking call); the end-of-training figures (``train_runtime``,
  ``total_flos``, ...) kept on the run as its summary;
- each evaluation: the checkpoint metrics; with ``stop_on=`` or ``early_stopping=True``
  the server's verdict, decided on the main process and broadcast, stops training;
- each save: the checkpoint directory recorded with its step (advice names it);
- train end: the run finished; "failed" (or "killed" on Ctrl-C) when training raised.

Only the main process (``state.is_world_process_zero``) talks to the server. Modelled
on the callbacks of transformers' own ``integrations/integration_utils.py`` (MLflow,
Weights & Biases), without their synchronous call per log.
"""

from __future__ import annotations

import logging
import os
import sys
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
except ImportError as exc:  # the thin client: no transformers
    raise ImportError(
        "evalstream.integrations.transformers needs transformers and torch: "
        "pip install 'evalstream[transformers]' (install torch first to choose its build)"
    ) from exc

from evalstream._client import Client
from evalstream._runs import Run
from evalstream.errors import Unimplemented
from evalstream.integrations._core import (
    EvaluationScorer,
    StopDecision,
    StopRule,
    broadcast_decision,
    connect,
    open_run,
    split_options,
)

__all__ = ["EvalstreamCallback", "evalstream_compute_metrics"]

_log = logging.getLogger("evalstream.integrations.transformers")

#: Values the Trainer logs once, at the end of `train()`: kept as the run's summary.
ONE_OFF = frozenset(
    {
        "train_runtime",
        "train_samples_per_second",
        "train_steps_per_second",
        "train_tokens_per_second",
        "total_flos",
        "train_loss",
    }
)
#: Log prefixes of evaluation values, and the split each goes to.
_EVAL_PREFIXES = (("eval_", "validation"), ("test_", "test"))


class EvalstreamCallback(TrainerCallback):  # type: ignore[misc]
    """Streams a `Trainer`'s logs to an evalstream run, and stops it on the server's verdict.

    Args:
        target: A `Client`, a server address, or None for ``EVALSTREAM_TARGET``
            (else ``localhost:50051``).
        project: The project the run belongs to (required).
        name: The run's name; default ``args.run_name``, else the output directory's name.
        resume: Reuse the run of that name if it exists (else it is an error).
        run_id: Resume this run (default ``EVALSTREAM_RUN_ID`` when set).
        model: The model's name; default the model config's ``name_or_path``, else its class.
        task: The run's task ("vqa", "captioning", ...).
        hyperparameters: Extra hyperparameters, over those read from `TrainingArguments`.
        stop_on: Verdict states that stop training (any of ``diverged``, ``overfitting``,
            ``not_learning``, ``unstable``, ``underfitting``).
        early_stopping: Also stop when the verdict's early stopping says so.
        verdict_config: The run's verdict thresholds (``monitor``, ``patience``, ...).
        flush_timeout: Seconds to wait for the points to reach the server before reading
            a verdict, and at the end of training.
        score_metrics: Text metrics of `scorer` (default all the server computes).
        **client_options: Options of `Client` (``token``, ``ca``, ...) or of the run's
            logger (``chunk_points``, ``max_buffer_points``, ...).

    Attributes:
        run: The run (None before training begins, and on every process but the main one).
        scorer: An `EvaluationScorer` bound to the run: ``scorer.score_text(step, ...)``
            records an evaluation's answers as the checkpoint at ``step``.
        state: The Trainer's state (``state.global_step``), from train begin.
        decision: The last `StopDecision` (None until a verdict was read).

    Raises:
        ValueError: no project, or a ``stop_on`` state that cannot stop training.
    """

    def __init__(
        self,
        target: str | Client | None = None,
        *,
        project: str,
        name: str | None = None,
        resume: bool = False,
        run_id: str | None = None,
        model: str | None = None,
        task: str = "",
        hyperparameters: Mapping[str, Any] | None = None,
        stop_on: Iterable[str] = (),
        early_stopping: bool = False,
        verdict_config: Mapping[str, Any] | None = None,
        flush_timeout: float = 30.0,
        score_metrics: Sequence[str] | None = None,
        **client_options: Any,
    ) -> None:
        if not isinstance(project, str) or not project.strip():
            raise ValueError("EvalstreamCallback: project is required, e.g. project='vqa'")
        self.rule = StopRule(stop_on, early_stopping=early_stopping)
        self.target = target
        self.project = project
        self.name = name
        self.resume = resume
        self.run_id = run_id
        self.model = model
        self.task = task
        self.hyperparameters = dict(hyperparameters or {})
        self.flush_timeout = flush_timeout
        self.score_metrics = score_metrics
        self._client_options, self._run_options = split_options(
            target, client_options, owner="EvalstreamCallback"
        )
        if verdict_config is not None:
            self._run_options["verdict_config"] = dict(verdict_config)
        self.run: Run | None = None
        self.scorer: EvaluationScorer | None = None
        self.state: TrainerState | None = None
        self.decision: StopDecision | None = None
        self._client: Client | None = None
        self._owned = False
        self._training = False
        self._summary: dict[str, float] = {}
        self._skipped: set[str] = set()
        self._hook: Any = None
        self._no_update = False

    # --- train begin / end ---------------------------------------------------------------

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        train_dataloader: Any = None,
        **kwargs: Any,
    ) -> None:
        self.state = state
        if not state.is_world_process_zero:
            self._training = True  # takes part in the stop decisions
            return
        if self.run is None:
            self._open(args, model, train_dataloader)
        elif self.run.info.status != "running":
            self._call("set the run running", self.run.set_status, "running")
        self._training = True
        self._install_hook()

    def _open(self, args: TrainingArguments, model: Any, train_dataloader: Any) -> None:
        name = self.name or args.run_name or os.path.basename(os.path.abspath(_output_dir(args)))
        client, self._owned = connect(self.target, **self._client_options)
        try:
            self.run = open_run(
                client,
                project=self.project,
                name=name,
                run_id=self.run_id,
                resume=self.resume,
                model=self.model or model_name(model),
                task=self.task,
                hyperparameters={
                    **hyperparameters_of(args, train_dataloader),
                    **self.hyperparameters,
                },
                run_options=self._run_options,
            )
        except Exception as exc:
            if self._owned:
                client.close()
            raise RuntimeError(
                f"EvalstreamCallback: cannot start run {self.project}/{name} at {client.target}: "
                f"{exc}. Check the target (EVALSTREAM_TARGET), the token (EVALSTREAM_TOKEN) "
                "and that the server is up; training has not started."
            ) from exc
        self._client = client
        self.scorer = EvaluationScorer(self.run, metrics=self.score_metrics)
        _log.info("evalstream: logging to run %s (%s/%s)", self.run.id, self.project, name)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        training, self._training = self._training, False
        if self.run is None or not training:
            return
        self._remove_hook()
        summary, self._summary = self._summary, {}
        if summary:
            self._update(summary=summary)
        self._call("finish the run", self.run.finish, "finished", timeout=self.flush_timeout)

    def fail(self, status: str = "failed") -> None:
        """Marks the run failed (or "killed") after training raised; a no-op when it is not open.

        The Trainer does not call ``on_train_end`` when training raises. Uncaught
        exceptions are caught by a ``sys.excepthook`` the callback chains in for
        the time of training; in a notebook or a script that catches the error,
        call this, or train inside ``with callback:``.
        """
        if self.run is None or not self._training:
            return
        self._training = False
        self._remove_hook()
        self._call(f"mark the run {status}", self.run.finish, status, timeout=5.0)

    def close(self) -> None:
        """Closes the client the callback opened (after training; a later train() reopens)."""
        if self.scorer is not None:
            self.scorer.close()
        if self._owned and self._client is not None:
            self._client.close()
        self._client, self.run, self.scorer = None, None, None

    def __enter__(self) -> EvalstreamCallback:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None:
            self.fail("killed" if issubclass(exc_type, KeyboardInterrupt) else "failed")

    def _install_hook(self) -> None:
        if self._hook is not None:
            return
        previous = sys.excepthook

        def hook(
            kind: type[BaseException], value: BaseException, tb: types.TracebackType | None
        ) -> None:
            self.fail("killed" if issubclass(kind, KeyboardInterrupt) else "failed")
            previous(kind, value, tb)

        self._hook = (hook, previous)
        sys.excepthook = hook

    def _remove_hook(self) -> None:
        if self._hook is not None:
            hook, previous = self._hook
            if sys.excepthook is hook:
                sys.excepthook = previous
            self._hook = None

    # --- log / evaluate / save -----------------------------------------------------------

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run = self.run
        if run is None or not logs:
            return
        train: dict[str, float] = {}
        evals: dict[str, dict[str, float]] = {}
        one_off = False
        for key, value in logs.items():
            if type(value) is not float:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    self._skip(key, value)
                    continue
                value = float(value)
            if key in ONE_OFF:
                one_off = True
            for prefix, split in _EVAL_PREFIXES:
                if key.startswith(prefix):
                    evals.setdefault(split, {})[key[len(prefix) :]] = value
                    break
            else:
                train[key] = value
        if one_off:
            # The end-of-training figures (and the epoch they came at): the run's summary.
            self._summary.update(train)
            if not self._training:
                self._update(summary=self._summary)
                self._summary = {}
            train = {}
        elif evals:
            train.pop("epoch", None)  # an evaluation's epoch is the train split's
        step = state.global_step
        log: Callable[..., None] = run.log
        try:
            if train:
                log(step, **train)
            for split, values in evals.items():
                log(step, split=split, **values)
            if not self._training:
                run.flush(self.flush_timeout)  # after train(): nothing finishes the run later
        except Exception as exc:
            _log.warning("evalstream: logging step %d failed (training goes on): %s", step, exc)

    def _skip(self, key: str, value: object) -> None:
        if key not in self._skipped:
            self._skipped.add(key)
            _log.info("evalstream: %r is not a number (%s): not logged", key, type(value).__name__)

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run = self.run
        step = state.global_step
        if run is not None and metrics:
            values = checkpoint_metrics(metrics)
            if values:
                self._call("record the checkpoint metrics", run.log_checkpoint, step, values)
        if not (self.rule.active and self._training):
            return  # every process of a training job gets here alike
        decision = self._decide(run, step) if run is not None else None
        stop = broadcast_decision(decision.stop if decision is not None else False)
        if stop:
            control.should_training_stop = True

    def _decide(self, run: Run, step: int) -> StopDecision | None:
        try:
            run.flush(self.flush_timeout)  # the verdict must see this evaluation's points
            decision = self.rule.decide(run.verdict())
        except Exception as exc:
            _log.warning("evalstream: no verdict at step %d (training goes on): %s", step, exc)
            return None
        self.decision = decision
        if decision.stop:
            keep = decision.best_checkpoint or (
                f"step {decision.best_step}" if decision.best_step is not None else "none yet"
            )
            _log.warning("evalstream: stopping training at step %d: %s", step, decision.reason)
            print(
                f"evalstream: stopped at step {step}; checkpoint to keep: {keep}",
                file=sys.stderr,
                flush=True,
            )
        return decision

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.run is None:
            return
        step = state.global_step
        path = os.path.abspath(os.path.join(_output_dir(args), f"{PREFIX_CHECKPOINT_DIR}-{step}"))
        self._update(saved_checkpoints={step: path})

    # --- helpers -------------------------------------------------------------------------

    def _update(self, **changes: Any) -> None:
        if self.run is None or self._no_update:
            return
        try:
            self.run.update(**changes)
        except Unimplemented:
            self._no_update = True  # said once: the server predates UpdateRun
            _log.warning(
                "evalstream: the server cannot keep a run's summary and checkpoint directories "
                "(no UpdateRun): upgrade it; training goes on without them"
            )
        except Exception as exc:
            _log.warning("evalstream: could not update the run (training goes on): %s", exc)

    def _call(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            _log.warning("evalstream: could not %s (training goes on): %s", what, exc)
            return None


def checkpoint_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """An evaluation's quality metrics, prefix stripped: not its speed, epoch or memory figures.

    Example:
        >>> checkpoint_metrics({"eval_loss": 0.5, "eval_bleu": 31.0, "eval_runtime": 2.0,
        ...                     "epoch": 1.0, "eval_samples_per_second": 9.5})
        {'loss': 0.5, 'bleu': 31.0}
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        for prefix, _ in _EVAL_PREFIXES:
            if key.startswith(prefix):
                name = key[len(prefix) :]
                if not name.endswith(("runtime", "_per_second")) and "mem_" not in name:
                    out[name] = float(value)
                break
    return out


def model_name(model: Any) -> str:
    """The model's name: its config's ``name_or_path``, else its class name ("" for None)."""
    if model is None:
        return ""
    config = getattr(model, "config", None)
    name = getattr(config, "name_or_path", "") or getattr(config, "_name_or_path", "")
    return str(name) if name else type(model).__name__


def _output_dir(args: TrainingArguments) -> str:
    return str(args.output_dir or "trainer_output")  # the Trainer's own default


def _value(v: Any) -> Any:
    return getattr(v, "value", v)  # the TrainingArguments enums (optim, scheduler, ...)


def hyperparameters_of(args: TrainingArguments, train_dataloader: Any = None) -> dict[str, Any]:
    """The run's hyperparameters from `TrainingArguments` (and the training set's size).

    ``batch_size`` is the total: per device x gradient accumulation x processes, so
    that the server derives ``steps_per_epoch`` from ``dataset_size``.
    """
    world = max(int(getattr(args, "world_size", 1) or 1), 1)
    hp: dict[str, Any] = {
        "learning_rate": float(args.learning_rate),
        "per_device_train_batch_size": int(args.per_device_train_batch_size),
        "batch_size": int(
            args.per_device_train_batch_size * args.gradient_accumulation_steps * world
        ),
        "gradient_accumulation_steps": int(args.gradient_accumulation_steps),
        "world_size": world,
        "optimizer": str(_value(args.optim)),
        "lr_scheduler": str(_value(args.lr_scheduler_type)),
        "weight_decay": float(args.weight_decay),
        "seed": int(args.seed),
    }
    if args.max_steps and args.max_steps > 0:
        hp["max_steps"] = int(args.max_steps)
    else:
        hp["epochs"] = float(args.num_train_epochs)
    warmup = float(getattr(args, "warmup_steps", 0) or 0)
    if 0 < warmup < 1:
        hp["warmup_ratio"] = warmup
    elif warmup >= 1:
        hp["warmup_steps"] = int(warmup)
    ratio = float(getattr(args, "warmup_ratio", 0) or 0)
    if ratio > 0:
        hp["warmup_ratio"] = ratio
    if str(_value(args.eval_strategy)) == "steps" and args.eval_steps and args.eval_steps >= 1:
        hp["eval_interval"] = int(args.eval_steps)
    dataset = getattr(train_dataloader, "dataset", None)
    try:
        if dataset is not None:
            hp["dataset_size"] = len(dataset)
    except TypeError:  # an iterable dataset has no length
        pass
    return hp


def evalstream_compute_metrics(
    callback: EvalstreamCallback,
    tokenizer: Any,
    *,
    questions: Sequence[str] | None = None,
    image_uris: Sequence[str] | None = None,
    specimen_ids: Sequence[str] | None = None,
    extra: Callable[[Any], Mapping[str, float]] | None = None,
) -> Callable[[Any], dict[str, float]]:
    """A ``compute_metrics`` for `Trainer` that scores the generated answers on the server.

    With ``Seq2SeqTrainer(args=Seq2SeqTrainingArguments(predict_with_generate=True))``
    the predictions are generated token ids: they and the labels are decoded
    (``-100`` taken as padding) and sent to `EvalstreamCallback.scorer` as the
    checkpoint at the current step, so the scores become the step's checkpoint
    metrics and every pair a specimen, with its question and image. Logits (a
    causal LM without generation) are reduced by argmax first. `questions`,
    `image_uris` and `specimen_ids` are one per evaluation example, in the eval
    dataset's order (the Trainer does not shuffle it). The returned figures
    (``bleu``, ``rougeL``, ...) are logged by the Trainer as ``eval_bleu``, ...;
    `extra` adds metrics of your own. Only the main process scores; a failure
    to score is a warning, and the evaluation goes on without the scores.

    Example:
        >>> cb = EvalstreamCallback(project="vqa")  # doctest: +SKIP
        >>> trainer = Seq2SeqTrainer(..., callbacks=[cb],  # doctest: +SKIP
        ...     compute_metrics=evalstream_compute_metrics(cb, tokenizer, questions=qs))
    """

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        import numpy as np

        out: dict[str, float] = dict(extra(eval_pred)) if extra is not None else {}
        scorer, state = callback.scorer, callback.state
        if scorer is None or state is None:
            return out
        preds = eval_pred.predictions
        if isinstance(preds, tuple):
            preds = preds[0]
        preds = np.asarray(preds)
        if preds.ndim == 3:
            preds = preds.argmax(-1)
        labels = np.asarray(eval_pred.label_ids)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        predictions = [
            s.strip()
            for s in tokenizer.batch_decode(
                np.where(preds < 0, pad, preds), skip_special_tokens=True
            )
        ]
        references = [
            s.strip()
            for s in tokenizer.batch_decode(
                np.where(labels < 0, pad, labels), skip_special_tokens=True
            )
        ]
        for label, given in (
            ("questions", questions),
            ("image_uris", image_uris),
            ("specimen_ids", specimen_ids),
        ):
            if given is not None and len(given) != len(predictions):
                raise ValueError(
                    f"evalstream_compute_metrics: {len(given)} {label} but {len(predictions)} "
                    "evaluation examples: give one per example of the eval dataset, in order"
                )
        step = state.global_step
        try:
            report = scorer.score_text(
                step,
                predictions,
                references,
                questions=questions,
                image_uris=image_uris,
                specimen_ids=specimen_ids,
            )
        except Exception as exc:
            _log.warning("evalstream: scoring step %d failed (evaluation goes on): %s", step, exc)
            return out
        for name, score in report.overall.items():
            if score.value is not None:
                out[name] = float(score.value)
        return out

    return compute_metrics
