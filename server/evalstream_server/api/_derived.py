"""Values a Run answer derives from the stored run: learning-rate ends and steps per epoch.

Shared by every RPC that answers a Run (CreateRun, GetRun, SetRunStatus, UpdateRun).
"""

from __future__ import annotations

from evalstream_server.store import RunRecord, Store


def derived_values(run: RunRecord, store: Store) -> dict[str, bool | int | float | str]:
    """Values derived from the run: learning-rate ends and steps per epoch."""
    derived: dict[str, bool | int | float | str] = {}
    for series in store.read_series(run.id, series=("learning_rate",)):
        if series.split == "train" and len(series.values):
            derived["initial_learning_rate"] = float(series.values[0])
            derived["final_learning_rate"] = float(series.values[-1])
    size, batch = run.hyperparameters.get("dataset_size"), run.hyperparameters.get("batch_size")
    if (
        isinstance(size, int)
        and isinstance(batch, int)
        and not isinstance(size, bool)
        and not isinstance(batch, bool)
        and size > 0
        and batch > 0
    ):
        derived["steps_per_epoch"] = -(-size // batch)
    return derived
