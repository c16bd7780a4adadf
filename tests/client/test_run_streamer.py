"""The loss streamer against a scripted Runs stub (no server): load refusals are resent."""

from __future__ import annotations

from collections.abc import Iterator

from evalstream._run_types import RunInfo
from evalstream._runs import Run
from evalstream.v1 import runs_pb2

OVERLOADED = "the store's write queue is full (1024 writes waiting); retry later"


class _Call:
    def __init__(self, acks: Iterator[runs_pb2.LossAck]) -> None:
        self._acks = acks

    def __iter__(self) -> Iterator[runs_pb2.LossAck]:
        return self._acks

    def cancel(self) -> None:
        pass


class _OverloadedOnce:
    """Refuses each chunk the first time as the server does when its store is overloaded
    (accepted false, no field), then stores it."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.stored: list[int] = []

    def StreamLoss(self, requests, timeout=None) -> _Call:  # noqa: N802 - the stub's name
        def acks() -> Iterator[runs_pb2.LossAck]:
            for chunk in requests:
                if chunk.sequence not in self.seen:
                    self.seen.add(chunk.sequence)
                    yield runs_pb2.LossAck(sequence=chunk.sequence, reason=OVERLOADED)
                else:
                    self.stored.extend(chunk.steps)
                    yield runs_pb2.LossAck(
                        sequence=chunk.sequence, accepted=True, stored=len(chunk.steps)
                    )

        return _Call(acks())


class _Client:
    def __init__(self, stub: object) -> None:
        self._runs = stub
        self._open_runs: set[Run] = set()


def test_a_chunk_refused_for_load_is_resent_not_lost() -> None:
    stub = _OverloadedOnce()
    info = RunInfo("r1", "p", "n", "", "", "running", {}, {}, 0.0, 0.0)
    run = Run(_Client(stub), info, chunk_points=5, max_backoff=0.05)
    run.log_many(range(12), [0.5] * 12)
    run.flush(timeout=30)  # raises PointsRefused if a load refusal were taken as final
    run._close_logger(5)
    assert sorted(stub.stored) == list(range(12))
    assert run.refusals == []
    assert run.stats.chunks_overloaded >= 1 and run.stats.points_acked == 12
