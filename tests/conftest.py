"""Shared test set-up: Keras 2 for tfmot, and the real datasets next to the repository."""
import os
import pathlib

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
# The project's datasets live beside the repository (../shared/datasets); PRADO_DATASETS overrides.
DATASETS = pathlib.Path(os.environ.get("PRADO_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_dir() -> pathlib.Path:
    """The real datasets; a test that needs them fails loudly when they are missing."""
    if not (DATASETS / "README.md").exists():
        pytest.fail(f"real datasets not found at {DATASETS} (set PRADO_DATASETS to their folder)")
    return DATASETS
