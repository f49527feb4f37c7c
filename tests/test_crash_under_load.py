"""The crash promises under CPU load: the kill -9 and full-disk scenarios, 20 times in a row.

Each scenario once passed alone and failed under load (a busy loop beside the
tests changes which batches the listener hands over and where a kill lands).
This runs them with a CPU hog beside them; ``pytest -m slow`` (several minutes).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_json_array import _kill_mid_burst
from test_reliability import digest_on_full_disk_scenario, full_disk_scenario, tmpfs

ROUNDS = 20


@pytest.fixture
def cpu_hog() -> Iterator[subprocess.Popen[bytes]]:
    """``python -c 'while True: pass'`` beside the test; killed at the end."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield hog
    finally:
        hog.kill()
        hog.wait()


@pytest.mark.slow
def test_kill_9_mid_burst_leaves_a_whole_array_20_times_under_a_cpu_hog(
    tmp_path: Path, cpu_hog: subprocess.Popen[bytes]
) -> None:
    for round_ in range(ROUNDS):
        folder = tmp_path / f"round-{round_}"
        folder.mkdir()
        _kill_mid_burst(folder, 20)  # 20 kills each round: 400 in all
        assert cpu_hog.poll() is None  # the load was there all along


@pytest.mark.slow
def test_full_disk_loses_nothing_20_times_under_a_cpu_hog(
    tmp_path: Path, cpu_hog: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    for round_ in range(ROUNDS):
        capsys.readouterr()
        logger = logging.getLogger(f"audit_test.load.{uuid.uuid4().hex[:12]}")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        with tmpfs(tmp_path / f"queue-{round_}") as disk:
            full_disk_scenario(disk, logger, lambda: capsys.readouterr().err)
        with tmpfs(tmp_path / f"digest-{round_}") as disk:
            digest_on_full_disk_scenario(disk, lambda: capsys.readouterr().err)
        assert cpu_hog.poll() is None
