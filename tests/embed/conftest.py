"""Fixtures of the embedding tests: the default model, built once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeweir.config import ModelConfig
from codeweir.embed.model_build import ModelSpec, ensure_model


@pytest.fixture(scope="module")
def state_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built models cached across runs under pytest's cache (keyed by the source hash)."""
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    return Path(cache.mkdir("codeweir-state")) if cache else tmp_path_factory.mktemp("codeweir-state")


@pytest.fixture(scope="module")
def default_spec(state_dir: Path) -> ModelSpec:
    return ensure_model(ModelConfig(quantized=False), state_dir)
