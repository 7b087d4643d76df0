import os

import pytest
from hypothesis import settings

from codeweir.config import ModelConfig
from codeweir.embed.model_build import ensure_model
from tests.model_copies import make_model_wheel

# CI runs each property on the same examples every time (a red CI must be reproducible, and a
# shared 2-core machine makes per-example deadlines meaningless); local runs keep exploring.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("CODEWEIR_HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def default_model_dir(tmp_path_factory):
    """The default model converted to ONNX once per test session (tests point model.path at it)."""
    return ensure_model(ModelConfig(quantized=False), tmp_path_factory.mktemp("model-state")).directory


@pytest.fixture(scope="module")
def model_wheel(tmp_path_factory):
    """A wheel of the model's package, as `codeweir model install` downloads it."""
    return make_model_wheel(tmp_path_factory.mktemp("wheel"))
