"""The store's project listing (counts, paging) and its flag filter on specimens."""

from __future__ import annotations

import pytest
from evalstream_server.store import InvalidInput, NewRun, SpecimenRecord, SQLiteStore


def test_list_projects_counts_runs_and_running_runs(store: SQLiteStore) -> None:
    for project, name in (("vision", "a"), ("vision", "b"), ("nlp", "c"), ("vision", "d")):
        store.create_run(NewRun(project=project, name=name))
    store.set_status(store.find_run("vision", "b").id, "finished")
    last = store.set_status(store.find_run("vision", "d").id, "failed")
    projects, token = store.list_projects()
    assert token == ""
    # By name; vision: 3 runs, a still running; its last update is d's status change.
    assert [(p.name, p.runs, p.running) for p in projects] == [("nlp", 1, 1), ("vision", 3, 1)]
    assert projects[1].updated_at == last.updated_at


def test_list_projects_pages_by_name(store: SQLiteStore) -> None:
    names = [f"p{i:02d}" for i in range(7)]
    for name in reversed(names):
        store.create_run(NewRun(project=name, name="run"))
    seen, token, pages = [], "", 0
    while True:
        page, token = store.list_projects(page_size=3, page_token=token)
        seen += [p.name for p in page]
        pages += 1
        if not token:
            break
    assert (seen, pages) == (names, 3)  # 3 + 3 + 1


def test_list_projects_empty_and_bad_token(store: SQLiteStore) -> None:
    assert store.list_projects() == ([], "")
    with pytest.raises(InvalidInput, match="page token"):
        store.list_projects(page_token="garbage")


def test_specimens_flag_filter_keeps_only_flagged_across_pages(
    store: SQLiteStore, run_id: str
) -> None:
    flags = [("missed_detection",), (), ("loose_box", "missed_detection"), ("loose_box",)] * 5
    records = [SpecimenRecord(f"s{i:02d}", flags=f) for i, f in enumerate(flags)]
    store.record_specimens(run_id, "validation", 10, records)
    # Hand-counted: indices 0 and 2 of every group of four carry missed_detection.
    expected = [f"s{i:02d}" for i in range(20) if i % 4 in (0, 2)]
    got, token = [], ""
    while True:
        page, token = store.specimens(
            run_id, "validation", 10, page_size=3, page_token=token, flag="missed_detection"
        )
        assert len(page) <= 3
        got += [s.specimen_id for s in page]
        if not token:
            break
    assert got == expected
    everything, _ = store.specimens(run_id, "validation", 10, page_size=100)
    assert len(everything) == 20
    assert store.specimens(run_id, "validation", 10, flag="format_mismatch") == ([], "")
