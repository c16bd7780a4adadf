"""VerdictConfig: from a stored mapping, merged overrides, validation."""

from __future__ import annotations

import pytest
from evalstream_server.analysis.verdict_config import VerdictConfig


def test_config_from_mapping_and_validate() -> None:
    cfg = VerdictConfig.from_mapping({"patience": 5, "min_delta": 1, "warmup_steps": 100})
    assert (cfg.patience, cfg.min_delta, cfg.warmup_steps) == (5, 1.0, 100)
    with pytest.raises(ValueError, match="unknown verdict config key.*bogus"):
        VerdictConfig.from_mapping({"bogus": 1})
    with pytest.raises(ValueError, match="patience must be int"):
        VerdictConfig.from_mapping({"patience": "3"})
    assert cfg.merged({"mode": "max"}).mode == "max" and cfg.mode == ""
    assert VerdictConfig().validate() == []
    assert VerdictConfig(overfit_gap=0.3, severe_overfit_gap=0.2).validate()
