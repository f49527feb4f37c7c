"""The one-off journal events of a training run: decisions, hyperparameters,
evaluation, saved model, data set, model comparison.

:class:`RunEvents` is a part of :class:`audit_logging.training.TrainingRun`
(which inherits it): each method writes one journal line through the run's
``_log``, with the run's ``dataset`` and ``model`` names.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from audit_logging import schema
from audit_logging.detect import fmt, metric_mode
from audit_logging.training_files import DatasetInfo, file_sha256, scan_csv

__all__ = ["RunEvents", "describe_error"]


def describe_error(exc: BaseException) -> str:
    """``"TypeName: message"`` of an exception, safe for any exception."""
    return f"{type(exc).__name__}: {schema.safe_str(exc)}"


class RunEvents:
    """The event methods of :class:`~audit_logging.training.TrainingRun`."""

    dataset_name: str | None

    def _log(
        self,
        level: int,
        message: str,
        event: str,
        decision: str | None = None,
        reasoning: str | None = None,
        metrics: dict[str, Any] | None = None,
        args: tuple[Any, ...] = (),
        *,
        per_rank: bool = False,
        **kwargs: Any,
    ) -> None:
        raise NotImplementedError

    def decide(
        self,
        event: str | schema.Event,
        decision: str,
        *,
        reasoning: str,
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        """Log a decision (ALGORITHM_SELECTED, DATASET_PREPROCESSED, ...) with its reasoning."""
        name = event.value if isinstance(event, schema.Event) else event
        snapshot = dict(metrics) if metrics is not None else None  # the caller may reuse it
        self._log(logging.INFO, decision, name, decision, reasoning, snapshot)

    def hyperparameters(self, params: Mapping[str, Any], defaults_used: Iterable[str] = ()) -> None:
        """Log HYPERPARAMETERS_SET; ``defaults_used`` names the ones left at their defaults."""
        params = dict(params)
        defaults = list(defaults_used)
        explicit = [k for k in params if k not in defaults]
        parts = []
        if explicit:
            parts.append("set explicitly: " + ", ".join(f"{k}={params[k]!r}" for k in explicit))
        if defaults:
            parts.append(
                "defaults used: "
                + ", ".join(
                    f"{k}={params[k]!r}" if k in params else f"{k} (value not given)"
                    for k in defaults
                )
            )
        self._log(
            logging.INFO,
            "Hyperparameters set",
            schema.Event.HYPERPARAMETERS_SET.value,
            "Defaults applied" if defaults else "Hyperparameters set",
            (f"{len(params)} hyperparameters; " + "; ".join(parts) + ".") if parts else None,
            {"hyperparameters": params, "defaults_used": defaults},
        )

    def evaluated(
        self,
        *,
        decision: str = "Performance assessment completed",
        reasoning: str | None = None,
        **metrics: Any,
    ) -> None:
        """Log MODEL_EVALUATED with the metrics as given."""
        if reasoning is None and metrics:
            reasoning = "Metrics computed by the training code: " + ", ".join(
                f"{k} {fmt(v)}" for k, v in metrics.items()
            )
            reasoning += "."
        self._log(
            logging.INFO,
            "Model evaluated",
            schema.Event.MODEL_EVALUATED.value,
            decision,
            reasoning,
            metrics,
        )

    def saved(self, path: str | os.PathLike[str]) -> tuple[int, str] | None:
        """Log MODEL_SAVED with the file's size and SHA-256; return them, ``None`` if unreadable."""
        where = os.fspath(path)
        try:
            size, digest = file_sha256(where)
        except OSError as exc:
            self._log(
                logging.WARNING,
                "Saved model could not be read",
                schema.Event.MODEL_SAVED.value,
                None,
                f"{where} could not be read to record its size and hash: {describe_error(exc)}.",
                {"path": where},
            )
            return None
        self._log(
            logging.INFO,
            "Model saved",
            schema.Event.MODEL_SAVED.value,
            "Model persisted",
            f"Saved to {where}: {size} bytes, SHA-256 {digest}.",
            {"path": where, "size_bytes": size, "sha256": digest},
        )
        return size, digest

    def dataset(
        self,
        path: str | os.PathLike[str],
        *,
        event: str | schema.Event = schema.Event.DATASET_UPLOADED,
        encoding: str = "utf-8-sig",
    ) -> DatasetInfo | None:
        """Read a CSV once; log ``event`` (size, SHA-256) and DATASET_VALIDATED (rows, columns).

        The run's ``dataset`` name becomes the file's name when none was given.
        Returns what was read, or ``None`` when the file could not be read.
        """
        where = os.fspath(path)
        name = event.value if isinstance(event, schema.Event) else event
        if self.dataset_name is None:
            self.dataset_name = os.path.basename(where)
        try:
            info = scan_csv(where, encoding)
        except OSError as exc:
            self._log(
                logging.WARNING,
                "Dataset could not be read",
                name,
                None,
                f"{where} could not be read: {describe_error(exc)}.",
                {"path": where},
            )
            return None
        self._log(
            logging.INFO,
            "Dataset received",
            name,
            "Dataset registered",
            f"{where}: {info.size_bytes} bytes, SHA-256 {info.sha256}.",
            {"path": where, "size_bytes": info.size_bytes, "sha256": info.sha256},
        )
        snapshot = {
            "path": where,
            "rows": info.rows,
            "columns": info.columns,
            "ragged_rows": info.ragged_rows,
            "size_bytes": info.size_bytes,
            "sha256": info.sha256,
        }
        if info.error is not None:
            decision = "Validation failed"
            reasoning = f"The file is not readable as CSV: {info.error}."
            level = logging.WARNING
        elif info.ragged_rows:
            decision = "Validation found problems"
            reasoning = (
                f"{info.ragged_rows} of {info.rows} rows do not have the header's "
                f"{info.columns} columns."
            )
            level = logging.WARNING
        elif not info.rows:
            decision = "Validation found problems"
            reasoning = f"No data rows (header with {info.columns} columns only)."
            level = logging.WARNING
        else:
            decision = "Validation passed"
            reasoning = f"{info.rows} rows, each with the header's {info.columns} columns."
            level = logging.INFO
        self._log(
            level,
            "Dataset validated",
            schema.Event.DATASET_VALIDATED.value,
            decision,
            reasoning,
            snapshot,
        )
        return info

    def compare(
        self,
        a: Mapping[str, Any],
        b: Mapping[str, Any],
        metric: str,
        *,
        mode: str | None = None,
    ) -> str | None:
        """Log MODEL_COMPARED between two models' metric dicts; return the better one's name.

        Each dict holds the model's metrics and its name under ``"model"`` (or
        ``"name"``; else ``"a"`` / ``"b"``). ``mode`` (``"max"``/``"min"``)
        defaults from the metric's name (:func:`~audit_logging.detect.metric_mode`).
        On a tie the first model is kept. ``None`` when a value is missing.
        """
        name_a = str(a.get("model", a.get("name", "a")))
        name_b = str(b.get("model", b.get("name", "b")))
        direction = mode or metric_mode(metric)
        va, vb = a.get(metric), b.get(metric)
        snapshot: dict[str, Any] = {"metric": metric, "a": dict(a), "b": dict(b)}
        numeric = all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in (va, vb)
        )
        if not numeric:
            self._log(
                logging.WARNING,
                "Models could not be compared",
                schema.Event.MODEL_COMPARED.value,
                None,
                f"{metric} is not a finite number for both models "
                f"({name_a}: {va!r}, {name_b}: {vb!r}).",
                snapshot,
            )
            return None
        assert isinstance(va, (int, float)) and isinstance(vb, (int, float))
        difference = va - vb
        snapshot["difference"] = difference
        snapshot["formulas"] = {"difference": f"a.{metric} - b.{metric}"}
        better_a = difference >= 0 if direction == "max" else difference <= 0
        winner, loser = (name_a, name_b) if better_a else (name_b, name_a)
        sense = "higher" if direction == "max" else "lower"
        if difference == 0:
            reasoning = f"{name_a} and {name_b} have the same {metric} {fmt(va)}; kept the first."
        else:
            reasoning = (
                f"{winner} has the {sense} {metric}: {name_a} {fmt(va)} vs {name_b} "
                f"{fmt(vb)} (difference {fmt(difference)}; {sense} is better)."
            )
        self._log(
            logging.INFO,
            f"Models compared on {metric}",
            schema.Event.MODEL_COMPARED.value,
            f"Selected {winner} over {loser}",
            reasoning,
            snapshot,
        )
        return winner
