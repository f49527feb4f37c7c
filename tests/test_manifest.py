"""The per-folder manifest: a deleted, cut or edited file is named by ``verify``.

The writers call :mod:`audit_logging.manifest` as each file is begun,
appended to (files without a chain of their own), sealed or retired; the
folders here are written by the real writers.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from audit_logging import CsvHandler, JsonlHandler, WarningFileHandler, manifest
from audit_logging.cli import main
from audit_logging.formats import MANIFEST_NAME
from audit_logging.read import catalogue, verify


def journal_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("ml-platform-*.jsonl"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def folder(tmp_path: Path, logger: logging.Logger) -> Path:
    """A default output folder: journal (sealed), five-column CSV (two batches), two warnings."""
    out = tmp_path / "run"
    jsonl = JsonlHandler(directory=out)
    sheet = CsvHandler(directory=out)
    warnings = WarningFileHandler(directory=out / "warnings")
    for handler in (jsonl, sheet, warnings):
        logger.addHandler(handler)
    for n in range(5):
        logger.info("m", extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": {"n": n}})
    for n in range(2):
        logger.info("a", extra={"action_type": "tag_add", "details": {"n": n}})
    logger.info("w", extra={"warning_type": "nan_loss"})
    logger.info("w", extra={"warning_type": "credentials_missing"})
    for handler in (jsonl, sheet, warnings):
        logger.removeHandler(handler)
        handler.close()
    return out


def test_an_untouched_folder_is_proven_whole(folder: Path) -> None:
    report = verify(catalogue([folder]))
    assert report.ok, report.problems
    assert report.unproven == [] and report.retired == []
    manifests = [f for f in catalogue([folder]).files if f.kind == "manifest"]
    assert [m.path.parent.name for m in manifests] == ["run", "warnings"]


def test_a_deleted_journal_is_named(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [journal] = journal_files(folder)
    journal.unlink()
    code, out, _ = run(capsys, "verify", str(folder))
    assert code == 1
    assert f"{journal}: missing: named by the manifest (line 1) but gone" in out.splitlines()


def test_a_deleted_digest_and_cut_tail_are_named(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [journal] = journal_files(folder)
    Path(str(journal) + ".digest.json").unlink()
    journal.write_bytes(b"".join(journal.read_bytes().splitlines(keepends=True)[:-1]))
    code, out, _ = run(capsys, "verify", str(folder))
    assert code == 1
    assert f"{journal}.digest.json: missing: the journal's digest file is gone" in out
    assert f"{journal}: truncated: the manifest sealed seq 5" in out
    assert "ends at seq 4" in out


@pytest.mark.parametrize("how", ["edit", "delete"])
def test_an_edited_or_deleted_warning_file_is_named(
    folder: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = sorted((folder / "warnings").glob("*.json"))[0]
    if how == "edit":
        body = json.loads(target.read_bytes())
        target.write_text(json.dumps(dict(body, message="nothing happened")))
    else:
        target.unlink()
    code, out, _ = run(capsys, "verify", str(folder))
    kind = "edited: differs from what was written" if how == "edit" else "missing"
    assert code == 1 and out.startswith(f"{target}: {kind}")


def test_a_retired_file_is_reported_as_retired(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = sorted((folder / "warnings").glob("*.json"))[0]
    target.unlink()
    manifest.retired(folder / "warnings", target.name, "max_age_days")
    code, out, _ = run(capsys, "verify", str(folder))
    assert code == 0
    assert out.strip() == f"{target} (max_age_days): retired"
    code, out, _ = run(capsys, "verify", "--json", str(folder))
    assert json.loads(out)["retired"] == [f"{target} (max_age_days)"]


def test_an_edited_manifest_is_named(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = folder / MANIFEST_NAME
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"kind":"csv"', b'"kind":"CSV"')
    path.write_bytes(b"".join(lines))
    code, out, _ = run(capsys, "verify", str(folder))
    assert code == 1
    assert f"{path}:2: edited: manifest seq 2 does not match its hash" in out
    del lines[2]  # a whole manifest line removed (the edited one put back first)
    lines[1] = lines[1].replace(b'"kind":"CSV"', b'"kind":"csv"')
    path.write_bytes(b"".join(lines))
    code, out, _ = run(capsys, "verify", str(folder))
    assert code == 1 and f"{path}:3: missing: manifest seq 4 where 3 was due" in out


def test_the_default_csv_is_proven_by_its_batches(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = folder / "audit_log.csv"
    assert path.read_text().splitlines()[0] == "timestamp,action_type,status,details,error"
    original = path.read_bytes()
    path.write_bytes(original.replace(b'"{""n"":1}"', b'"{""n"":7}"'))
    code, out, _ = run(capsys, "verify", str(folder))
    assert code == 1
    assert out.startswith(f"{path}:3: edited: bytes ")
    # Bytes appended by hand after the last batch are unproven: exit 0, named, counted.
    path.write_bytes(original + b"2026-01-01T00:00:00.000000Z,forged,success,{},\r\n")
    code, out, err = run(capsys, "verify", str(folder))
    assert code == 0
    assert out.strip() == f"{path}: unproven: 48 byte(s): bytes after the manifest's last batch"
    assert "1 unproven (48 byte(s))" in err
    assert run(capsys, "verify", "--strict", str(folder))[0] == 1
    code, out, _ = run(capsys, "verify", "--json", str(folder))
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["unproven_bytes"] == 48
    assert list(data) == [
        "ok", "files", "lines", "problems", "unproven", "unproven_bytes", "retired",
    ]  # fmt: skip


def test_manifest_lines_chain_like_a_journal(tmp_path: Path) -> None:
    manifest.created(tmp_path, "a.jsonl", "journal")
    manifest.retired(tmp_path, "b.json", "max_files_per_type")
    lines = [json.loads(line) for line in (tmp_path / MANIFEST_NAME).read_text().splitlines()]
    assert [(line["op"], line["file"], line["seq"]) for line in lines] == [
        ("created", "a.jsonl", 1),
        ("retired", "b.json", 2),
    ]
    assert all(len(line["hash"]) == 64 for line in lines)
    assert manifest.MANIFEST_NAME == MANIFEST_NAME


def test_a_manifest_that_cannot_be_written_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).mkdir()  # in the way: opening it for writing fails
    failures: list[OSError] = []
    manifest.created(tmp_path, "a.jsonl", "journal", on_error=failures.append)
    assert len(failures) == 1 and isinstance(failures[0], IsADirectoryError)
    with pytest.raises(IsADirectoryError):
        manifest.retired(tmp_path, "b.json", "max_age_days")


def test_seal_files_without_the_seal_verifier_are_named_unproven(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    if importlib.util.find_spec("audit_logging.seals") is not None:
        pytest.skip("the seal verifier is installed: it checks seal files itself")
    [journal] = journal_files(folder)
    seals = folder / (journal.name + ".seals")
    seals.mkdir()
    (seals / "0001.note").write_text("example.com/log\n1\nAAAA\n")
    code, out, _ = run(capsys, "verify", str(folder))
    assert code == 0 and f"{seals / '0001.note'}: unproven: 23 byte(s): seal not checked" in out
    code, _, err = run(capsys, "verify", str(folder), "--public-key", "k.pub")
    assert code == 2 and "needs audit_logging.seals" in err
