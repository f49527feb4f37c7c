"""Optional dependencies: one way to find them and one error when they are missing.

Each extra of the distribution brings packages that only some features need
(``gcs``: google-cloud-storage; ``git``: gitpython; ``fast``: orjson). They
are imported lazily, where the feature is used; a feature that cannot work
without its package raises :class:`MissingExtraError`, an ``ImportError``
whose message says which ``pip install`` fixes it. Probes that merely report
what is available ask :func:`available`, which never raises.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["MissingExtraError", "available", "require", "require_module"]

DISTRIBUTION = "audit-logging"


class MissingExtraError(ImportError):
    """An optional package is not installed; :attr:`install` is the command that installs it."""

    def __init__(self, module: str, extra: str, package: str, feature: str) -> None:
        self.extra = extra
        self.package = package
        self.install = f'pip install "{DISTRIBUTION}[{extra}]"'
        super().__init__(f"{feature} needs {package}: {self.install}", name=module)


def available(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (only its parent packages).

    ``importlib.util.find_spec`` imports the parents of a dotted name and
    raises when one is missing (``google`` for ``google.cloud.storage``): here
    that is just "not available".
    """
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent missing; or blocked with sys.modules[x] = None
        return False


def require(module: str, *, extra: str, package: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` now unless ``module`` can be imported.

    Cheap (no import of ``module`` itself): for constructors that use the
    package later, on another thread, so the mistake shows at set-up.
    """
    if not available(module):
        raise MissingExtraError(module, extra, package, feature)


def require_module(module: str, *, extra: str, package: str, feature: str) -> ModuleType:
    """Import and return ``module``; :class:`MissingExtraError` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # Only a missing module of that package is the extra's absence; an
        # ImportError from inside an installed package is its own bug.
        missing = exc.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            raise MissingExtraError(module, extra, package, feature) from exc
        raise
