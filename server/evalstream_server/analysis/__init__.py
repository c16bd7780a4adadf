"""Curve analysis: downsampling for charts (verdicts, early stopping and comparison build on it)."""

from __future__ import annotations

from evalstream_server.store.downsample import downsample_minmax

__all__ = ["downsample_minmax"]
