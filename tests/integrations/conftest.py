"""Fixtures of the framework tests: a journal, and the frameworks kept off the network and GPU."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

# Before any framework is imported by a test module: CPU only, no hub, Keras on JAX.
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from journal import Journal


@pytest.fixture
def journal(logger: logging.Logger, tmp_path: Path) -> Journal:
    return Journal(logger, tmp_path / "logs")
