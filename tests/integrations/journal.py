"""A logger writing a real JSONL journal, and strict readers of it, for the integration tests."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from audit_logging import JsonlHandler

from helpers import journal_files, read_jsonl


class Journal:
    """The journal lines written through ``logger`` into ``directory``."""

    def __init__(self, logger: logging.Logger, directory: Path) -> None:
        self.logger = logger
        self.directory = directory
        self.handler = JsonlHandler(directory=directory)
        logger.addHandler(self.handler)

    def lines(self) -> list[dict[str, Any]]:
        self.handler.flush()
        return [line for path in journal_files(self.directory) for line in read_jsonl(path)]

    def events(self) -> list[str]:
        return [line["event"] for line in self.lines()]

    def of(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["event"] == event]

    def only(self, event: str) -> dict[str, Any]:
        [line] = self.of(event)
        return line

    def progress(self) -> list[dict[str, Any]]:
        """The metrics of each TRAINING_PROGRESS line, in order."""
        return [line["metrics_snapshot"] for line in self.of("TRAINING_PROGRESS")]


def squeeze(events: list[str]) -> list[str]:
    """Consecutive repeats folded into one: the shape of a run, whatever its length."""
    out: list[str] = []
    for event in events:
        if not out or out[-1] != event:
            out.append(event)
    return out
