"""What the Trainer and Lightning integrations share, with no framework import.

- `connect` and `open_run`: the client and the run a training job logs to,
  created or resumed (``EVALSTREAM_RUN_ID``, or ``resume=True`` by name).
- `StopRule`: when the server's verdict means "stop training", and what to say
  about it (the step, the checkpoint to keep and its directory).
- `EvaluationScorer`: an evaluation's generated answers or predicted boxes,
  scored by the server as the run's checkpoint at a step, so that checkpoint
  metrics and specimens are recorded; optionally in the background.
- `broadcast_decision`: the main process's decision on every process of a
  ``torch.distributed`` job.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from evalstream._base import DEFAULT_TARGET
from evalstream._client import Client
from evalstream._points import LOGGER_OPTIONS
from evalstream._runs import Run
from evalstream._types import BoxReport, ImageBoxes, TextReport
from evalstream._verdicts import Verdict

_log = logging.getLogger("evalstream.integrations")

#: Environment variables the integrations read when the caller leaves the setting out.
ENV_TARGET = "EVALSTREAM_TARGET"
ENV_TOKEN = "EVALSTREAM_TOKEN"
ENV_RUN_ID = "EVALSTREAM_RUN_ID"

#: Verdict states that `StopRule(stop_on=...)` may stop on.
STOP_STATES = ("diverged", "overfitting", "not_learning", "unstable", "underfitting")


#: `create_run` options an integration passes through besides the logger's.
RUN_OPTIONS = ("verdict_config", "alert_webhooks")


def split_options(
    target: str | Client | None, options: Mapping[str, Any], *, owner: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An integration's extra keywords, split into (client options, run options).

    Run options are the run logger's (`chunk_points`, `on_full`, ...) and
    `create_run`'s (`verdict_config`, `alert_webhooks`); client options are
    `Client`'s (`token`, `ca`, `timeout`, ...), refused beside a `Client`. Any
    other name is a TypeError now, not when training starts.

    Example:
        >>> split_options(None, {"token": "t", "chunk_points": 64}, owner="X")
        ({'token': 't'}, {'chunk_points': 64})
        >>> split_options(None, {"tokn": "t"}, owner="X")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: X: unknown option 'tokn'; the options are those of Client (ca, ...
    """
    client_names = sorted(
        name
        for name, p in inspect.signature(Client.__init__).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    )
    client_options: dict[str, Any] = {}
    run_options: dict[str, Any] = {}
    for name, value in options.items():
        if name in LOGGER_OPTIONS or name in RUN_OPTIONS:
            run_options[name] = value
        elif name in client_names:
            client_options[name] = value
        else:
            raise TypeError(
                f"{owner}: unknown option {name!r}; the options are those of Client "
                f"({', '.join(client_names)}), of the run logger "
                f"({', '.join(sorted(LOGGER_OPTIONS))}) and of create_run "
                f"({', '.join(sorted(RUN_OPTIONS))})"
            )
    if isinstance(target, Client) and client_options:
        raise TypeError(
            f"{owner}: client options {sorted(client_options)} given with a Client: "
            "set them on the Client, or pass an address instead"
        )
    return client_options, run_options


def connect(target: str | Client | None = None, **client_options: Any) -> tuple[Client, bool]:
    """The client to log through, and whether the caller owns it (and must close it).

    `target` is a `Client` (used as is, never closed here), an address, or None:
    then ``EVALSTREAM_TARGET``, else ``localhost:50051``. Without a ``token``
    option, ``EVALSTREAM_TOKEN`` is used when set.

    Example:
        >>> client, owned = connect("localhost:50051")
        >>> client.target, owned
        ('localhost:50051', True)
        >>> client.close()
    """
    if isinstance(target, Client):
        if client_options:
            raise TypeError(
                f"client options {sorted(client_options)} given with a Client: "
                "set them on the Client, or pass an address instead"
            )
        return target, False
    address = target or os.environ.get(ENV_TARGET) or DEFAULT_TARGET
    if "token" not in client_options and os.environ.get(ENV_TOKEN):
        client_options["token"] = os.environ[ENV_TOKEN]
    return Client(address, **client_options), True


def open_run(
    client: Client,
    *,
    project: str,
    name: str,
    run_id: str | None = None,
    resume: bool = False,
    model: str = "",
    task: str = "",
    hyperparameters: Mapping[str, Any] | None = None,
    run_options: Mapping[str, Any] | None = None,
) -> Run:
    """The run a training job logs to: resumed by id, resumed by name, or created.

    `run_id`, else ``EVALSTREAM_RUN_ID``, names a run to resume (it must belong
    to `project`); a finished or failed run is set running again. Otherwise the
    run is created, or with ``resume=True`` the run named `name` is reused when it
    exists. `run_options` go to `Client.create_run` (``verdict_config``, logger
    options); the hyperparameters of a resumed run are those it was created with.

    Raises:
        ValueError: the run to resume belongs to another project.
        AlreadyExists: the name is taken and `resume` is False.
    """
    options = dict(run_options or {})
    resume_id = run_id or os.environ.get(ENV_RUN_ID, "")
    if resume_id:
        # A resumed run keeps its creation settings: only the logger's options apply.
        logger_options = {k: v for k, v in options.items() if k in LOGGER_OPTIONS}
        run = client.get_run(resume_id, **logger_options)
        if run.info.project != project:
            raise ValueError(
                f"run {resume_id} (from {'run_id' if run_id else ENV_RUN_ID}) belongs to "
                f"project {run.info.project!r}, not {project!r}: give its project, or unset it"
            )
        if run.info.status != "running":
            run.set_status("running")
        _log.info("evalstream: resuming run %s (%s/%s)", run.id, project, run.info.name)
        return run
    return client.create_run(
        project,
        name,
        model=model,
        task=task,
        hyperparameters=dict(hyperparameters or {}),
        resume=resume,
        **options,
    )


@dataclass(frozen=True, slots=True)
class StopDecision:
    """Whether to stop training now, and why.

    Attributes:
        stop: True when the verdict meets the rule.
        reason: One sentence for the training log ("" when not stopping).
        state: The verdict's state.
        step: The last step the verdict has seen.
        best_step: The monitored quantity's best step (the checkpoint to keep),
            or None before the first evaluation.
        best_checkpoint: Where that checkpoint was saved, "" when not recorded.
    """

    stop: bool
    reason: str
    state: str
    step: int
    best_step: int | None
    best_checkpoint: str


class StopRule:
    """When a verdict means "stop training".

    Args:
        stop_on: Verdict states to stop on, any of `STOP_STATES`
            (e.g. ``("diverged", "overfitting")``).
        early_stopping: Also stop when the server's early stopping says so
            (patience exhausted on the run's monitor).

    Example:
        >>> rule = StopRule(("diverged",))
        >>> rule.active, rule.stop_on
        (True, ('diverged',))
        >>> StopRule(("healthy",))
        Traceback (most recent call last):
        ...
        ValueError: stop_on: 'healthy' is not a state to stop on; use any of diverged, \
overfitting, not_learning, unstable, underfitting
    """

    def __init__(self, stop_on: Iterable[str] = (), *, early_stopping: bool = False) -> None:
        if isinstance(stop_on, str):
            stop_on = (stop_on,)
        states = tuple(dict.fromkeys(stop_on))
        for state in states:
            if state not in STOP_STATES:
                raise ValueError(
                    f"stop_on: {state!r} is not a state to stop on; use any of "
                    + ", ".join(STOP_STATES)
                )
        self.stop_on = states
        self.early_stopping = bool(early_stopping)

    @property
    def active(self) -> bool:
        """Whether any verdict can stop training (else the verdict need not be read)."""
        return bool(self.stop_on) or self.early_stopping

    def decide(self, verdict: Verdict) -> StopDecision:
        """The decision for one verdict."""
        es = verdict.early_stopping
        keep = ""
        if es.best_step is not None:
            keep = f"; keep the checkpoint of step {es.best_step}"
            if es.best_checkpoint_path:
                keep += f" ({es.best_checkpoint_path})"
        reason = ""
        if verdict.state in self.stop_on:
            summary = verdict.summary.rstrip(". ")
            reason = f"the run is {verdict.state} at step {verdict.as_of_step}: {summary}"
        elif self.early_stopping and es.should_stop:
            reason = (
                f"early stopping at step {verdict.as_of_step}: {es.monitor} has not improved "
                f"in {es.evaluations_since_best} evaluations"
            )
        return StopDecision(
            stop=bool(reason),
            reason=reason + keep if reason else "",
            state=verdict.state,
            step=verdict.as_of_step,
            best_step=es.best_step,
            best_checkpoint=es.best_checkpoint_path,
        )


def broadcast_decision(stop: bool) -> bool:
    """The main process's `stop` on every process of a ``torch.distributed`` job.

    Outside a distributed job (or without torch) it returns `stop` as is. Every
    process must call it at the same point, as every collective.

    Example:
        >>> broadcast_decision(True)
        True
    """
    try:
        import torch.distributed as dist
    except ImportError:
        return stop
    if not (dist.is_available() and dist.is_initialized()):
        return stop
    box = [bool(stop)]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


class EvaluationScorer:
    """Scores an evaluation's answers or boxes as the run's checkpoint at a step.

    The server scores them (BLEU, ROUGE, METEOR, BERTScore; or box precision,
    recall, F1 and IoU), and records the scores as the step's checkpoint metrics
    and every pair or image as a specimen, with its question and image.

    Args:
        run: The run the checkpoints belong to.
        split: The split evaluated (default "validation").
        metrics: Text metrics to compute (default all four).
        background: Score on a background thread: the calls return a
            `concurrent.futures.Future` at once, and `wait` collects them.
        **text_options: Options of `Client.score_text` (e.g. ``use_stemmer``).

    Example:
        >>> scorer = EvaluationScorer(run)  # doctest: +SKIP
        >>> report = scorer.score_text(500, answers, refs, questions=qs)  # doctest: +SKIP
        >>> report.overall["bleu"].value  # doctest: +SKIP
    """

    def __init__(
        self,
        run: Run,
        *,
        split: str = "validation",
        metrics: Sequence[str] | None = None,
        background: bool = False,
        **text_options: Any,
    ) -> None:
        self.run = run
        self.split = split
        self.metrics = None if metrics is None else tuple(metrics)
        self._text_options = text_options
        self._pool = (
            ThreadPoolExecutor(1, thread_name_prefix="evalstream-scorer") if background else None
        )
        self._pending: list[Future[Any]] = []
        self._lock = threading.Lock()

    def score_text(
        self,
        step: int,
        predictions: Sequence[str],
        references: Sequence[str] | Sequence[Sequence[str]],
        *,
        questions: Sequence[str] | None = None,
        image_uris: Sequence[str] | None = None,
        specimen_ids: Sequence[str] | None = None,
    ) -> Any:
        """Scores generated answers against their references as the checkpoint at `step`.

        Returns the `TextReport`, or in the background a Future of it.
        """
        return self._run(
            self.run._client.score_text,
            predictions,
            references,
            metrics=self.metrics,
            questions=questions,
            image_uris=image_uris,
            specimen_ids=specimen_ids,
            checkpoint=self.run.checkpoint(step, self.split),
            **self._text_options,
        )

    def score_boxes(self, step: int, images: Iterable[ImageBoxes], **box_options: Any) -> Any:
        """Scores predicted boxes against the ground truth as the checkpoint at `step`.

        `box_options` are those of `Client.score_boxes` (``iou_thresholds``, ...).
        Returns the `BoxReport`, or in the background a Future of it.
        """
        return self._run(
            self.run._client.score_boxes,
            list(images),
            checkpoint=self.run.checkpoint(step, self.split),
            **box_options,
        )

    def _run(self, call: Any, *args: Any, **kwargs: Any) -> TextReport | BoxReport | Future[Any]:
        if self._pool is None:
            return call(*args, **kwargs)  # type: ignore[no-any-return]
        future = self._pool.submit(call, *args, **kwargs)
        with self._lock:
            # Done and fine: forgotten; failed (or cancelled): kept for `wait` to raise.
            self._pending = [
                f for f in self._pending if not f.done() or f.cancelled() or f.exception()
            ]
            self._pending.append(future)
        return future

    def wait(self, timeout: float | None = None) -> None:
        """Waits for the background scorings; raises the first one's error, if any."""
        with self._lock:
            pending, self._pending = self._pending, []
        first: BaseException | None = None
        for future in pending:
            if future.cancelled():
                continue
            error = future.exception(timeout)
            if error is not None and first is None:
                first = error
        if first is not None:
            raise first

    def close(self, timeout: float | None = None) -> None:
        """Waits for the background scorings (see `wait`) and stops the thread."""
        try:
            self.wait(timeout)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
