"""Scoring device selection through torch's device API.

torch is imported lazily: box scoring needs no torch, and a server without it
runs on the CPU. ``auto`` picks CUDA when torch sees a GPU; ``cuda`` without one
is a start-up error rather than a silent fall-back to the CPU.
"""

from __future__ import annotations

import importlib.util


def resolve_device(requested: str) -> str:
    """The device to score on: "cpu" or "cuda".

    Raises:
        ValueError: for an unknown name, or "cuda" where torch sees no GPU.

    Example:
        >>> resolve_device("cpu")
        'cpu'
    """
    if requested == "cpu":
        return "cpu"
    if requested not in ("auto", "cuda"):
        raise ValueError(f"device {requested!r} is not one of auto, cpu, cuda")
    has_cuda = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    if has_cuda:
        return "cuda"
    if requested == "cuda":
        raise ValueError("device cuda was asked for, but torch sees no CUDA device")
    return "cpu"
