"""Project scopes: the store as the current caller may see it.

Servicers get a `ScopedStore`, so every read or write that names a run or a project
passes one check. A run outside the caller's projects is ``NotFound`` with the message of
a missing run (run ids cannot be probed); a project outside them is `ProjectDenied`
(PERMISSION_DENIED: the caller named it). A Store method this class lacks fails loudly
rather than passing through unscoped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from evalstream_server.auth import Principal, current_principal
from evalstream_server.store import (
    ChangeMark,
    CheckpointRow,
    EvaluationStepRow,
    NewRun,
    NotFound,
    PointChunk,
    ProjectSummary,
    RunRecord,
    SeriesChunks,
    SeriesData,
    SpecimenRecord,
    Store,
    StoreError,
    WriteResult,
)
from evalstream_server.store._types import HyperValue


class ProjectDenied(StoreError):
    """The caller's token does not cover the project it named (-> PERMISSION_DENIED)."""


def require_project(principal: Principal, project: str) -> None:
    """Raises `ProjectDenied` unless `principal` may touch `project`.

    Example:
        >>> require_project(Principal("ci", "read", ("vision-*",)), "nlp")
        Traceback (most recent call last):
        ...
        evalstream_server.api._scope.ProjectDenied: token 'ci' may not access project 'nlp'
    """
    if not principal.can_access(project):
        raise ProjectDenied(f"token {principal.name!r} may not access project {project!r}")


class ScopedStore:
    """A `Store` that answers as if runs outside the caller's projects did not exist."""

    def __init__(self, store: Store, *, cache_size: int = 65_536) -> None:
        self._store = store
        self._cache_size = cache_size
        self._projects: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"ScopedStore does not scope {name!r}: add it to evalstream_server/api/_scope.py "
            "(every store method a servicer calls must check the caller's projects)"
        )

    # ------------------------------------------------------------ checks

    def _project_of(self, run_id: str) -> str:
        with self._lock:
            project = self._projects.get(run_id)
            if project is not None:
                self._projects.move_to_end(run_id)
                return project
        project = self._store.get_run(run_id).project  # NotFound propagates
        self._remember(run_id, project)
        return project

    def _remember(self, run_id: str, project: str) -> None:
        with self._lock:
            self._projects[run_id] = project
            while len(self._projects) > self._cache_size:
                self._projects.popitem(last=False)

    def _run(self, run_id: str) -> None:
        principal = current_principal()
        if principal.all_projects:
            return
        if not principal.can_access(self._project_of(run_id)):
            raise NotFound(f"run {run_id!r} not found")

    def _project(self, project: str) -> None:
        require_project(current_principal(), project)

    # ------------------------------------------------------------ runs

    def create_run(self, new: NewRun) -> RunRecord:
        self._project(new.project)
        return self._store.create_run(new)

    def get_run(self, run_id: str) -> RunRecord:
        principal = current_principal()
        run = self._store.get_run(run_id)
        self._remember(run.id, run.project)
        if not principal.can_access(run.project):
            raise NotFound(f"run {run_id!r} not found")
        return run

    def find_run(self, project: str, name: str) -> RunRecord:
        self._project(project)
        return self._store.find_run(project, name)

    def list_runs(
        self,
        *,
        project: str,
        statuses: Sequence[str] = (),
        model: str = "",
        hyperparameters: Mapping[str, HyperValue] = {},
        page_size: int = 100,
        page_token: str = "",
    ) -> tuple[list[RunRecord], str]:
        self._project(project)
        return self._store.list_runs(
            project=project,
            statuses=statuses,
            model=model,
            hyperparameters=hyperparameters,
            page_size=page_size,
            page_token=page_token,
        )

    def list_projects(
        self, *, page_size: int = 100, page_token: str = ""
    ) -> tuple[list[ProjectSummary], str]:
        """The store's pages with the projects outside the caller's scope left out.

        Asks the store for only as many projects as the page still lacks, so that
        every project of a store page is either kept or skipped and the store's
        token resumes exactly after the page returned.
        """
        principal = current_principal()
        if principal.all_projects:
            return self._store.list_projects(page_size=page_size, page_token=page_token)
        kept: list[ProjectSummary] = []
        token = page_token
        while True:
            page, token = self._store.list_projects(
                page_size=page_size - len(kept), page_token=token
            )
            kept += [p for p in page if principal.can_access(p.name)]
            if len(kept) >= page_size or not token:
                return kept, token

    def set_status(self, run_id: str, status: str) -> RunRecord:
        self._run(run_id)
        return self._store.set_status(run_id, status)

    def update_run(
        self,
        run_id: str,
        *,
        summary: Mapping[str, HyperValue] = {},
        saved_checkpoints: Mapping[int, str] | Sequence[tuple[int, str]] = (),
        hyperparameters: Mapping[str, HyperValue] = {},
    ) -> RunRecord:
        self._run(run_id)
        return self._store.update_run(
            run_id,
            summary=summary,
            saved_checkpoints=saved_checkpoints,
            hyperparameters=hyperparameters,
        )

    def saved_checkpoints(self, run_id: str) -> dict[int, str]:
        self._run(run_id)
        return self._store.saved_checkpoints(run_id)

    # ------------------------------------------------------------ points

    def write_points(self, chunk: PointChunk, *, timeout: float | None = None) -> WriteResult:
        self._run(chunk.run_id)
        return self._store.write_points(chunk, timeout=timeout)

    def submit_points(self, chunk: PointChunk) -> Future[WriteResult]:
        try:
            self._run(chunk.run_id)
        except NotFound as exc:
            refused: Future[WriteResult] = Future()
            refused.set_exception(exc)
            return refused
        return self._store.submit_points(chunk)

    def read_series(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[SeriesData]:
        self._run(run_id)
        return self._store.read_series(
            run_id, splits=splits, series=series, start_step=start_step, end_step=end_step
        )

    def read_page(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
        after: tuple[str, str, int] | None = None,
        limit: int,
    ) -> list[SeriesData]:
        self._run(run_id)
        return self._store.read_page(
            run_id,
            splits=splits,
            series=series,
            start_step=start_step,
            end_step=end_step,
            after=after,
            limit=limit,
        )

    def count_points(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> int:
        self._run(run_id)
        return self._store.count_points(
            run_id, splits=splits, series=series, start_step=start_step, end_step=end_step
        )

    def series_chunks(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[SeriesChunks]:
        self._run(run_id)
        return self._store.series_chunks(
            run_id, splits=splits, series=series, start_step=start_step, end_step=end_step
        )

    def last_points(self, run_id: str, n: int = 1) -> list[SeriesData]:
        self._run(run_id)
        return self._store.last_points(run_id, n)

    # ------------------------------------------------------------ checkpoints, specimens

    def log_checkpoint(
        self,
        run_id: str,
        split: str,
        step: int,
        metrics: Mapping[str, float],
        *,
        signatures: Mapping[str, str] = {},
    ) -> int:
        self._run(run_id)
        return self._store.log_checkpoint(run_id, split, step, metrics, signatures=signatures)

    def checkpoints(self, run_id: str) -> list[CheckpointRow]:
        self._run(run_id)
        return self._store.checkpoints(run_id)

    def record_specimens(
        self, run_id: str, split: str, step: int, specimens: Sequence[SpecimenRecord]
    ) -> int:
        self._run(run_id)
        return self._store.record_specimens(run_id, split, step, specimens)

    def evaluation_steps(self, run_id: str, *, split: str = "") -> list[EvaluationStepRow]:
        self._run(run_id)
        return self._store.evaluation_steps(run_id, split=split)

    def specimens(
        self,
        run_id: str,
        split: str,
        step: int,
        *,
        page_size: int = 100,
        page_token: str = "",
        flag: str = "",
    ) -> tuple[list[SpecimenRecord], str]:
        self._run(run_id)
        return self._store.specimens(
            run_id, split, step, page_size=page_size, page_token=page_token, flag=flag
        )

    def specimen_history(
        self, run_id: str, split: str, specimen_id: str
    ) -> list[tuple[int, SpecimenRecord]]:
        self._run(run_id)
        return self._store.specimen_history(run_id, split, specimen_id)

    def data_version(self, run_id: str) -> int:
        self._run(run_id)
        return self._store.data_version(run_id)

    def change_mark(self, run_id: str) -> ChangeMark | None:
        self._run(run_id)
        return self._store.change_mark(run_id)

    def follow(
        self, changed: Callable[[Sequence[str]], None], missed: Callable[[], None]
    ) -> None:
        """Refused: news of every project's runs is the server's, not a caller's."""
        raise PermissionError("following the store is the server's, not a caller's")

    def is_exporter(self) -> bool:
        return self._store.is_exporter()

    def close(self) -> None:
        """Does nothing: the store belongs to whoever opened it (`Deps`)."""
