"""The server's one BERTScore model and batcher: loaded once, shared by every stream.

States: ``disabled`` (``--bertscore-model none``), ``loading`` (health NOT_SERVING
for Scoring), ``ready``, ``failed`` (the server stops: a scoring service that
silently lacks a metric is worse than one that does not start).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalstream_server.runtime.batcher import BatcherStats, DynamicBatcher
from evalstream_server.runtime.models import ModelHandle, ModelNotReady, load_model

log = logging.getLogger("evalstream.runtime")

DISABLED = "none"


@dataclass(frozen=True, slots=True)
class BertScoreSettings:
    """What `--bertscore-*` flags say."""

    model: str = ""
    layer: int | None = None
    dtype: str = "auto"
    max_tokens_per_batch: int = 16_384
    max_batch_size: int = 128
    max_delay_seconds: float = 0.005
    max_queue: int = 4_096


class BertScoreRuntime:
    """Loads the model in the background and owns the dynamic batcher."""

    def __init__(self, settings: BertScoreSettings, *, device: str, model_dir: Path) -> None:
        self.settings = settings
        self._device = device
        self._model_dir = model_dir
        self._batcher: DynamicBatcher | None = None
        self._callbacks: list[Callable[[str], None]] = []
        self._lock = threading.Lock()
        self._handle: ModelHandle | None = None
        if settings.model.lower() != DISABLED:
            self._handle = ModelHandle(self._load, on_ready=self._ready, start=False)

    @property
    def enabled(self) -> bool:
        return self._handle is not None

    @property
    def state(self) -> str:
        """disabled, loading, ready or failed."""
        if self._handle is None:
            return "disabled"
        if self._handle.ready:
            return "ready"
        return "failed" if self._handle.error is not None else "loading"

    @property
    def error(self) -> BaseException | None:
        return None if self._handle is None else self._handle.error

    def on_settled(self, callback: Callable[[str], None]) -> None:
        """Calls `callback(state)` once loading ends (at once when it already has)."""
        with self._lock:
            if self.state in ("loading",) and self._handle is not None:
                self._callbacks.append(callback)
                return
        callback(self.state)

    def start(self) -> None:
        if self._handle is not None:
            self._handle.start()
            threading.Thread(target=self._settle, name="bertscore-settle", daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits for loading to end; True when ready."""
        return self._handle is not None and self._handle.wait(timeout)

    def _load(self) -> Any:
        s = self.settings
        return load_model(
            s.model, layer=s.layer, device=self._device, model_dir=self._model_dir, dtype=s.dtype
        )

    def _ready(self, model: Any) -> None:
        s = self.settings
        self._batcher = DynamicBatcher(
            model,
            max_tokens_per_batch=s.max_tokens_per_batch,
            max_batch_size=s.max_batch_size,
            max_delay=s.max_delay_seconds,
            max_queue=s.max_queue,
        )
        info = model.info
        log.info(
            "bertscore model ready",
            extra={
                "fields": {
                    "model": info.name,
                    "layer": info.layer,
                    "dtype": info.dtype,
                    "device": info.device,
                }
            },
        )

    def _settle(self) -> None:
        if self._handle is None:
            return
        self._handle.wait()
        with self._lock:
            callbacks, self._callbacks = self._callbacks, []
        state = self.state
        if state == "failed":
            log.error(
                "bertscore model failed to load", extra={"fields": {"error": str(self.error)}}
            )
        for callback in callbacks:
            callback(state)

    def batcher(self) -> DynamicBatcher:
        """The shared batcher.

        Raises:
            ModelNotReady: disabled, still loading, or failed.
        """
        if self._handle is None:
            raise ModelNotReady("BERTScore is disabled on this server (--bertscore-model none)")
        self._handle.get()  # raises ModelNotReady while loading or after a failure
        if self._batcher is None:
            raise ModelNotReady("the BERTScore batcher is not running")
        return self._batcher

    def stats(self) -> BatcherStats | None:
        return None if self._batcher is None else self._batcher.stats()

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close(timeout=10)
