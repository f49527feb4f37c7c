"""check_wandb: credentials from WANDB_API_KEY or a netrc entry, real files, no network."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from audit_logging import WarningFileHandler
from audit_logging.probes import check_wandb

KEY = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No key in the environment, HOME and NETRC in a tmp dir; returns the netrc path."""
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(path))
    return path


@pytest.fixture
def captured(tmp_path: Path, logger: logging.Logger) -> tuple[logging.Logger, Path]:
    out = tmp_path / "warnings"
    logger.addHandler(WarningFileHandler(directory=out))
    return logger, out


def warnings_in(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


def test_nothing_configured_logs_credentials_missing(
    env: Path, captured: tuple[logging.Logger, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    logger, out = captured
    status = check_wandb(logger)
    assert not status.ok and status.source is None
    assert status.warning_type == "credentials_missing"
    [warning] = warnings_in(out)
    assert warning["type"] == "credentials_missing" and warning["severity"] == "CRITICAL"
    assert warning["details"]["service"] == "wandb"
    assert warning["details"]["host"] == "api.wandb.ai"
    assert warning["details"]["searched"] == ["WANDB_API_KEY", str(env)]
    assert "wandb login" in warning["recommendation"]
    assert capsys.readouterr() == ("", "")


def test_key_in_environment(
    env: Path,
    captured: tuple[logging.Logger, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger, out = captured
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    status = check_wandb(logger)
    assert status.ok and status.source == "env" and status.warning_type is None
    assert KEY not in repr(status)
    assert warnings_in(out) == []
    assert KEY not in "".join(capsys.readouterr())


def test_netrc_entry_for_the_api_host(env: Path, captured: tuple[logging.Logger, Path]) -> None:
    logger, out = captured
    env.write_text(f"machine api.wandb.ai\n  login user\n  password {KEY}\n")
    env.chmod(0o600)
    status = check_wandb(logger)
    assert status.ok and status.source == "netrc" and status.netrc_path == str(env)
    assert KEY not in repr(status)
    assert warnings_in(out) == []


def test_netrc_for_another_host_and_custom_base_url(
    env: Path, captured: tuple[logging.Logger, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, out = captured
    env.write_text(f"machine wandb.example.com\n  login user\n  password {KEY}\n")
    env.chmod(0o600)
    missing = check_wandb(logger)
    assert not missing.ok
    assert (
        missing.reason == f"WANDB_API_KEY is not set and no netrc entry for api.wandb.ai in {env}"
    )
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")
    assert check_wandb(logger).source == "netrc"
    assert len(warnings_in(out)) == 1


def test_unparsable_netrc_never_leaks_its_text(
    env: Path, captured: tuple[logging.Logger, Path]
) -> None:
    logger, out = captured
    env.write_text(f"machine api.wandb.ai login user password {KEY} bogus\n")
    env.chmod(0o600)
    status = check_wandb(logger)
    assert not status.ok and "could not be parsed" in (status.reason or "")
    text = json.dumps(warnings_in(out))
    assert "could not be parsed" in text and KEY not in text
