"""Fixtures of the framework tests: a journal, and the frameworks kept off the network and GPU."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before any framework is imported by a test module: CPU only, no hub, Keras on JAX.
os.environ.setdefault("KERAS_BACKEND", "jax")
# Keras writes keras.json on first import: into a folder of this session, not the home folder.
_KERAS_HOME = None if "KERAS_HOME" in os.environ else tempfile.mkdtemp(prefix="keras-home-")
if _KERAS_HOME is not None:
    os.environ["KERAS_HOME"] = _KERAS_HOME
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from journal import Journal  # noqa: E402


@pytest.fixture
def journal(logger: logging.Logger, tmp_path: Path) -> Journal:
    return Journal(logger, tmp_path / "logs")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _KERAS_HOME is not None:
        shutil.rmtree(_KERAS_HOME, ignore_errors=True)
