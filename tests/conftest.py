"""Shared fixtures. Tests that need ../shared/models skip when it is absent (fresh clone)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHARED_MODELS = Path(os.environ.get("TFLQUANT_SHARED_MODELS", ROOT.parent / "shared" / "models"))
MODEL_NAMES = ("digits_cnn", "mobilenet_v2_035_96", "small_unet", "tiny_transformer")


def shared_model_dir(name: str) -> Path:
    d = SHARED_MODELS / name
    if not (d / "float.tflite").exists():
        pytest.skip(f"../shared/models/{name} is not present")
    return d


@pytest.fixture(params=MODEL_NAMES)
def shared_model(request: pytest.FixtureRequest) -> Path:
    """Folder of one reference model in ../shared/models (skipped when absent)."""
    return shared_model_dir(request.param)


@pytest.fixture
def example_model() -> Path:
    """The float model shipped in the repo (always present)."""
    return EXAMPLES / "digits_cnn.tflite"
