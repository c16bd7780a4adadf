"""compare() takes Run handles as well as ids; comparisons and verdicts print readably."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from evalstream import AsyncClient, Client
from evalstream.cli import main


def _two_runs(client: Client):  # noqa: ANN202 - (Run, Run)
    steps = np.arange(300)
    runs = []
    for name, lr, scale in (("a", 1e-4, 1.0), ("b", 3e-4, 0.8)):
        run = client.create_run("cmp", name, model="m", hyperparameters={"learning_rate": lr})
        run.log_many(steps, scale * np.exp(-steps / 100) + 0.3)
        run.finish()
        runs.append(run)
    return runs


def test_compare_takes_runs_and_prints_the_table(live_server) -> None:
    with Client(live_server.target) as client:
        a, b = _two_runs(client)
        by_handle = client.compare([a, b], baseline=b)
        by_info = client.compare([a.info, b.id], baseline=b.info)
        assert [r.run_id for r in by_handle.rows] == [a.id, b.id]
        assert by_handle.baseline_run_id == b.id == by_info.baseline_run_id
        assert by_handle.differing == ("learning_rate",)
        text = str(by_handle)
        lines = text.splitlines()
        assert lines[0].split()[:4] == ["run", "model", "learning_rate*", "final"]
        assert lines[1].split()[:3] == ["a", "m", "0.0001"]
        assert lines[2].split()[:3] == ["b", "m", "0.0003"]
        assert f"{a.id} vs {b.id}: changed learning_rate" in text
        assert "Comparison(" not in text
        out = io.StringIO()
        argv = ["--target", live_server.target, "runs", "compare", a.id, b.id, "--baseline", b.id]
        assert main(argv, out=out) == 0
        assert out.getvalue().rstrip("\n") == text  # one implementation for both
        with pytest.raises(TypeError, match=r"run_ids\[1\]: expected a run id or a Run, got int"):
            client.compare([a, 7])
        with pytest.raises(TypeError, match="sequence of runs"):
            client.compare(a.id)  # type: ignore[arg-type]
        verdict = a.verdict()
        assert str(verdict).startswith(f"{verdict.state.upper()}")
        assert f"at step {verdict.as_of_step}: {verdict.summary}" in str(verdict).splitlines()[0]


def test_async_compare_takes_runs(live_server) -> None:
    with Client(live_server.target) as client:
        a, b = _two_runs(client)

    async def compare() -> list[str]:
        async with AsyncClient(live_server.target) as client:
            ra, rb = await client.get_run(a.id), await client.get_run(b.id)
            return [r.run_id for r in (await client.compare([ra, rb], baseline=ra)).rows]

    assert asyncio.run(compare()) == [a.id, b.id]
