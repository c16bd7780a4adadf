"""evalstream from training code: one line in a Hugging Face Trainer or a Lightning Trainer.

Each integration is a module of its own that imports its framework, installed
with its extra; this package itself imports neither::

    evalstream.integrations.transformers  EvalstreamCallback (evalstream[transformers])
    evalstream.integrations.lightning     EvalstreamLogger, EvalstreamEarlyStopping
                                          (evalstream[lightning])

What they share, framework-free: `StopRule` (when a verdict means stop) and
`EvaluationScorer` (score an evaluation's answers or boxes as the run's
checkpoint).
"""

from __future__ import annotations

from evalstream.integrations._core import (
    STOP_STATES,
    EvaluationScorer,
    StopDecision,
    StopRule,
    connect,
    open_run,
)

__all__ = [
    "STOP_STATES",
    "EvaluationScorer",
    "StopDecision",
    "StopRule",
    "connect",
    "open_run",
]
