"""Optional packages: a missing extra is named, with its pip command; probes say so and never raise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit_logging._optional import MissingExtraError, available, require

from helpers import run_python

# Prepended to each child: refuses to import `{blocked}` and its submodules, as
# an environment without that package would (the real package stays installed).
BLOCK = """
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == {blocked!r} or name.startswith({blocked!r} + "."):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Refuse())
for loaded in [m for m in sys.modules if m == {blocked!r} or m.startswith({blocked!r} + ".")]:
    del sys.modules[loaded]
"""


def run_without(blocked: str, code: str, cwd: Path) -> dict[str, object]:
    """Run ``code`` with ``blocked`` refused; it prints one JSON object, returned here."""
    result = run_python(BLOCK.format(blocked=blocked) + code, cwd=cwd)
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def test_gcs_mirror_without_google_names_the_extra(tmp_path: Path) -> None:
    code = """
import json, logging.config
import audit_logging  # the package imports without the extra
from audit_logging.writers.gcs import GcsSyncHandler
try:
    GcsSyncHandler("bucket", ".")
except ImportError as exc:
    direct = {"type": type(exc).__name__, "message": str(exc), "extra": exc.extra, "name": exc.name}
try:
    logging.config.dictConfig({"version": 1, "handlers": {"mirror": {
        "class": "audit_logging.writers.gcs.GcsSyncHandler", "bucket": "b", "directory": "."}}})
except ValueError as exc:
    configured = type(exc.__cause__).__name__
print(json.dumps({**direct, "configured": configured}))
"""
    answer = run_without("google", code, tmp_path)
    assert answer == {
        "type": "MissingExtraError",
        "message": (
            "Mirroring logs to Google Cloud Storage needs google-cloud-storage: "
            'pip install "audit-logging[gcs]"'
        ),
        "extra": "gcs",
        "name": "google.cloud.storage",
        "configured": "MissingExtraError",
    }


def test_probes_without_their_packages_report_and_do_not_raise(tmp_path: Path) -> None:
    code = """
import json, logging
from audit_logging.probes import check_gcs, check_git
status = {probe}
print(json.dumps({{"available": status.available, "reason": status.reason}}))
"""
    gcs = run_without("google", code.format(probe='check_gcs("bucket")'), tmp_path)
    assert gcs == {"available": False, "reason": "google-cloud-storage is not installed"}
    git = run_without("git", code.format(probe='check_git(".")'), tmp_path)
    assert git == {"available": False, "reason": "gitpython is not installed (extra 'git')"}


def test_require_names_the_extra_and_keeps_other_import_errors(tmp_path: Path) -> None:
    assert available("json") and not available("audit_logging_no_such_module.sub")
    with pytest.raises(MissingExtraError) as missing:
        require("audit_logging_no_such_module", extra="x", package="some-pkg", feature="Thing")
    assert str(missing.value) == 'Thing needs some-pkg: pip install "audit-logging[x]"'
    assert isinstance(missing.value, ImportError) and missing.value.install.endswith('[x]"')
    # An installed package that fails to import for its own reasons is not "missing".
    package = tmp_path / "broken_pkg_for_test"
    package.mkdir()
    (package / "__init__.py").write_text("import a_dependency_that_is_not_there\n")
    code = """
import json, sys
sys.path.insert(0, ".")
from audit_logging._optional import require_module
try:
    require_module("broken_pkg_for_test", extra="x", package="p", feature="F")
except ImportError as exc:
    print(json.dumps({"type": type(exc).__name__, "name": exc.name}))
"""
    result = run_python(code, cwd=tmp_path)
    assert json.loads(result.stdout) == {
        "type": "ModuleNotFoundError",
        "name": "a_dependency_that_is_not_there",
    }


def test_verify_with_a_key_but_without_the_sign_extra_says_what_to_install(
    tmp_path: Path,
) -> None:
    pytest.importorskip("cryptography")
    from audit_logging.seals.keys import keygen

    public = keygen(tmp_path / "keys").public
    code = f"""
import contextlib, io, json, logging
from audit_logging import JsonlHandler
from audit_logging.cli import main
journal = JsonlHandler(directory={str(tmp_path / "logs")!r})
record = logging.LogRecord("t", logging.INFO, "train.py", 0, "started", None, None)
record.event = "TRAINING_STARTED"
journal.handle(record)
journal.close()
err = io.StringIO()
with contextlib.redirect_stderr(err):
    status = main(["verify", {str(tmp_path)!r}, "--public-key", {str(public)!r}])
print(json.dumps({{"status": status, "stderr": err.getvalue()}}))
"""
    answer = run_without("cryptography", code, tmp_path)
    assert answer["status"] == 2
    assert 'pip install "audit-logging[sign]"' in str(answer["stderr"])
    assert "Traceback" not in str(answer["stderr"])
