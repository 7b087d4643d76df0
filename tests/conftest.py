import pytest

from codeweir.config import ModelConfig
from codeweir.embed.model_build import ensure_model


@pytest.fixture(scope="session")
def default_model_dir(tmp_path_factory):
    """The default model converted to ONNX once per test session (tests point model.path at it)."""
    return ensure_model(ModelConfig(quantized=False), tmp_path_factory.mktemp("model-state")).directory
