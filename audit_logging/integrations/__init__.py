"""Automatic audit logging from the frameworks ML teams train and serve with.

One small module per framework, each importing its framework only when one
of its names is used (a missing framework raises
:class:`~audit_logging.integrations._common.MissingIntegrationError`, an
``ImportError`` naming the pip extra)::

    from audit_logging.integrations import AuditKerasCallback   # imports keras now

| name | framework | extra |
|---|---|---|
| ``AuditCallback`` | Lightning (``lightning.pytorch``) | ``lightning`` |
| ``AuditTrainerCallback`` | Hugging Face ``transformers.Trainer`` | ``transformers`` |
| ``AuditKerasCallback`` | Keras 3 | ``keras`` |
| ``AuditXGBoostCallback`` | XGBoost | ``xgboost`` |
| ``audit_lightgbm_callback`` | LightGBM | ``lightgbm`` |
| ``audited_fit``, ``audited_partial_fit`` | scikit-learn | ``sklearn`` |
| ``AuditServerInterceptor``, ``AsyncAuditServerInterceptor`` | grpcio | ``grpc`` |

They log through :class:`~audit_logging.TrainingRun` and
:class:`~audit_logging.AuditLogger` only, never to a file of their own.
"""

from __future__ import annotations

import importlib
from typing import Any

from audit_logging.integrations._common import MissingIntegrationError

__all__ = [
    "AsyncAuditServerInterceptor",
    "AuditCallback",
    "AuditKerasCallback",
    "AuditServerInterceptor",
    "AuditTrainerCallback",
    "AuditXGBoostCallback",
    "MissingIntegrationError",
    "audit_lightgbm_callback",
    "audited_fit",
    "audited_partial_fit",
]

_WHERE = {
    "AuditCallback": "lightning",
    "AuditTrainerCallback": "transformers",
    "AuditKerasCallback": "keras",
    "AuditXGBoostCallback": "xgboost",
    "audit_lightgbm_callback": "lightgbm",
    "audited_fit": "sklearn",
    "audited_partial_fit": "sklearn",
    "AuditServerInterceptor": "grpc",
    "AsyncAuditServerInterceptor": "grpc",
}


def __getattr__(name: str) -> Any:
    # PEP 562: the framework is imported when its name is first asked for.
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
