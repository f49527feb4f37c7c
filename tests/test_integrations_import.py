"""audit_logging.integrations imports no framework until asked, and names the extra when one is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit_logging.integrations import MissingIntegrationError
from audit_logging.integrations._common import require

from helpers import run_python


def test_require_names_the_extra() -> None:
    with pytest.raises(MissingIntegrationError) as caught:
        require("no_such_framework_xyz", "xgboost")
    assert isinstance(caught.value, ImportError)
    assert caught.value.extra == "xgboost"
    assert 'pip install "audit-logging[xgboost]"' in str(caught.value)


def test_package_import_is_lazy(tmp_path: Path) -> None:
    code = (
        "import sys, json, audit_logging, audit_logging.integrations\n"
        "heavy = ['torch', 'lightning', 'transformers', 'keras', 'xgboost', 'lightgbm', 'grpc', 'sklearn']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize(
    ("name", "module", "extra"),
    [
        ("AuditXGBoostCallback", "xgboost", "xgboost"),
        ("audit_lightgbm_callback", "lightgbm", "lightgbm"),
        ("AuditKerasCallback", "keras", "keras"),
        ("AuditCallback", "lightning", "lightning"),
        ("AuditTrainerCallback", "transformers", "transformers"),
        ("AuditServerInterceptor", "grpc", "grpc"),
    ],
)
def test_missing_framework_raises_a_typed_error(
    tmp_path: Path, name: str, module: str, extra: str
) -> None:
    # sys.modules[name] = None makes "import name" fail, as when it is not installed.
    code = (
        "import sys\n"
        f"sys.modules[{module!r}] = None\n"
        "from audit_logging.integrations import MissingIntegrationError\n"
        "try:\n"
        f"    from audit_logging.integrations import {name}\n"
        "except MissingIntegrationError as exc:\n"
        "    print(exc.extra, '|', exc)\n"
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    got_extra, message = done.stdout.strip().split(" | ")
    assert got_extra == extra
    assert f'pip install "audit-logging[{extra}]"' in message


def test_unknown_name() -> None:
    import audit_logging.integrations as integrations

    with pytest.raises(AttributeError):
        integrations.NoSuchCallback  # noqa: B018
