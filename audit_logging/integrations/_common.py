"""What every integration shares: the typed import error, metric clean-up, run set-up.

Integrations log only through :class:`~audit_logging.training.TrainingRun`
(and :class:`~audit_logging.facade.AuditLogger` for gRPC): they never open a
file. Each one imports its framework lazily through :func:`require`, so that
``import audit_logging.integrations`` costs nothing and a missing framework
is a :class:`MissingIntegrationError` naming the pip extra to install.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import math
import numbers
import os
import threading
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from audit_logging._optional import MissingExtraError
from audit_logging.detect import fmt
from audit_logging.training import TrainingRun

__all__ = [
    "EntryPointPatch",
    "MissingIntegrationError",
    "defaults_of",
    "make_run",
    "require",
    "scalar",
    "scalars",
]


#: The package each extra installs (for the error message).
_PACKAGES = {
    "lightning": "lightning",
    "transformers": "transformers",
    "keras": "keras",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "grpc": "grpcio",
    "sklearn": "scikit-learn",
}


class MissingIntegrationError(MissingExtraError):
    """A framework integration was used without its framework installed.

    ``extra`` is the pip extra and ``install`` the command that fixes it.
    """

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            module, extra, _PACKAGES.get(extra, module), f"audit_logging.integrations ({module})"
        )


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingIntegrationError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingIntegrationError(module, extra) from exc


def scalar(value: Any) -> float | int | None:
    """A plain Python number from a number, a 0-d tensor or array; ``None`` if it is not one.

    Frameworks report metrics as torch tensors, numpy or JAX scalars: the
    journal wants plain numbers, and ``.item()`` is the one call they share.
    """
    kind = type(value)
    if kind is float or kind is int:  # the common case, before the slower ABC checks
        return value  # type: ignore[no-any-return]
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            size = getattr(value, "size", 1)
            if (size() if callable(size) else size) != 1:  # torch: size() is a method
                numel = getattr(value, "numel", None)
                if not (callable(numel) and numel() == 1):
                    return None
            got = item()
        except Exception:
            return None
        return scalar(got)
    return None


def scalars(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    """The entries of ``metrics`` that are numbers (tensors turned into plain numbers)."""
    out: dict[str, float | int] = {}
    for key, value in metrics.items():
        number = scalar(value)
        if number is not None:
            out[str(key)] = number
    return out


def defaults_of(cls: type) -> dict[str, Any]:
    """The keyword defaults of ``cls.__init__`` (what a parameter is when not given)."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def same_value(a: Any, b: Any) -> bool:
    """``a == b`` for hyperparameter values, NaN equal to NaN, never raising."""
    try:
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def make_run(
    run: TrainingRun | None,
    logger: logging.Logger | str | None,
    dataset: str | None,
    model: str | None,
    run_kwargs: Mapping[str, Any] | None,
    *,
    every_call: bool = True,
) -> TrainingRun:
    """The given run, or a new one for the integration.

    ``every_call``: a TRAINING_PROGRESS line for every ``progress()`` call, for
    callbacks called once per epoch or evaluation (few calls, each matters).
    Callbacks called every boosting round or batch keep TrainingRun's own
    throttling (a line every 100 calls or 30 s, every call seen by the
    detector), so that their cost per step stays a few microseconds.
    ``run_kwargs`` overrides either.
    """
    if run is not None:
        if dataset is not None and run.dataset_name is None:
            run.dataset_name = dataset
        if model is not None and run.model is None:
            run.model = model
        return run
    kwargs: dict[str, Any] = {"progress_every": 1} if every_call else {}
    kwargs.update(run_kwargs or {})
    return TrainingRun(logger, dataset=dataset, model=model, **kwargs)


def quote(value: Any) -> str:
    """A metric value as the journal's reasoning spells numbers."""
    number = scalar(value)
    return fmt(number) if number is not None else repr(value)


class EntryPointPatch:
    """Wraps a framework's entry point (``Model.fit``, ``Trainer.train``) for our callbacks.

    Some frameworks give a callback no hook for a failure or for the end of
    training, and no view of the other callbacks; the mature integrations
    (MLflow's autolog) wrap the entry point. The wrap is installed when the
    integration module is imported, before the user's code can look the
    entry point up: ``model.fit(x, y, callbacks=[AuditKerasCallback()])``
    looks ``model.fit`` up *before* it builds the callback, so a wrap made by
    the callback's constructor (and removed when its run ends) would miss
    every such call after the first run. A call without one of our callbacks
    goes straight to the original, untouched; the wrapper keeps no state of a
    run once the run has ended. :meth:`uninstall` restores the original.
    """

    def __init__(
        self,
        targets: Callable[[], list[tuple[Any, str]]],
        wrap: Callable[[Callable[..., Any]], Callable[..., Any]],
    ) -> None:
        self._targets = targets
        self._wrap = wrap
        self._lock = threading.Lock()
        self._saved: list[tuple[Any, str, Any, bool]] = []

    def install(self) -> None:
        with self._lock:
            if self._saved:
                return
            for owner, name in self._targets():
                had = name in vars(owner) if isinstance(owner, type) else True
                original = getattr(owner, name)
                self._saved.append((owner, name, original, had))
                setattr(owner, name, self._wrap(original))

    def uninstall(self) -> None:
        with self._lock:
            for owner, name, original, had in reversed(self._saved):
                if had:
                    setattr(owner, name, original)
                else:
                    delattr(owner, name)  # the class inherited it: inherit again
            self._saved.clear()

    @property
    def installed(self) -> bool:
        return bool(self._saved)


def _sha256(path: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def saved(run: TrainingRun, path: str | os.PathLike[str]) -> None:
    """Log MODEL_SAVED for a checkpoint file (``run.saved``) or folder (a manifest's SHA-256).

    A folder (the HF Trainer's ``checkpoint-N``) is logged with the SHA-256 of
    each file and one SHA-256 over a manifest of them: the lines
    ``"<sha256>  <relative path>\\n"`` sorted by path, the format that
    ``sha256sum -c`` checks, so one value names the whole checkpoint.
    """
    where = os.fspath(path)
    if not os.path.isdir(where):
        run.saved(where)
        return
    files: dict[str, str] = {}
    total = 0
    try:
        for root, _dirs, names in os.walk(where):
            for name in names:
                full = os.path.join(root, name)
                size, digest = _sha256(full)
                files[os.path.relpath(full, where).replace(os.sep, "/")] = digest
                total += size
    except OSError as exc:
        run.decide(
            "MODEL_SAVED",
            "Checkpoint could not be read",
            reasoning=f"{where} could not be read to hash it: {type(exc).__name__}: {exc}.",
            metrics={"path": where},
        )
        return
    manifest = "".join(f"{files[rel]}  {rel}\n" for rel in sorted(files))
    digest = hashlib.sha256(manifest.encode("utf-8")).hexdigest()
    run.decide(
        "MODEL_SAVED",
        "Model persisted",
        reasoning=(
            f"Saved to folder {where}: {len(files)} files, {total} bytes; SHA-256 {digest} "
            "of the manifest of each file's SHA-256 and path (sha256sum format, sorted by path)."
        ),
        metrics={
            "path": where,
            "size_bytes": total,
            "sha256": digest,
            "sha256_of": "manifest",
            "files": files,
        },
    )


def early_stopped(
    run: TrainingRun,
    who: str,
    *,
    monitor: str,
    patience: Any,
    unit: str,
    best: Any = None,
    best_at: Any = None,
    last: Any = None,
    stopped_at: Any = None,
    min_delta: Any = None,
    mode: str | None = None,
    extra: str = "",
) -> None:
    """End ``run`` with TRAINING_STOPPED whose reasoning quotes the framework's early stopping.

    Every value is the framework's own (its callback's attributes, its
    reported metrics): ``who`` names the callback, e.g. ``"Keras EarlyStopping"``.
    """
    parts = [f"Early stopping triggered by {who}: monitor {monitor}"]
    if mode:
        parts.append(f"mode {mode}")
    parts.append(f"patience {patience} {unit}s")
    if min_delta is not None:
        parts.append(f"min_delta {quote(min_delta)}")
    text = ", ".join(parts) + "."
    if best is not None:
        text += f" Best {monitor} {quote(best)}"
        text += f" at {unit} {best_at}." if best_at is not None else "."
    if last is not None:
        text += f" Last {monitor} {quote(last)}"
        text += f" at {unit} {stopped_at}." if stopped_at is not None else "."
    elif stopped_at is not None:
        text += f" Stopped at {unit} {stopped_at}."
    if extra:
        text += " " + extra
    run.stop(text)


def settings_of(obj: Any, prefix: str, names: tuple[str, ...]) -> dict[str, Any]:
    """``{prefix.name: value}`` of the plain settings of a framework object (an EarlyStopping).

    Logged with the hyperparameters, so that the early stopping the run may
    end with is on record, with its monitor and patience, from the start.
    """
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(obj, name, None)
        number = scalar(value)
        if number is not None:
            out[f"{prefix}.{name}"] = number
        elif value is None or isinstance(value, (str, bool)):
            out[f"{prefix}.{name}"] = value
    return out
