"""The bucket side of the GCS mirror: object naming marks, errors and their kinds, retries.

Everything here that touches google-cloud-storage imports it lazily: the
mirror's module must import without the ``gcs`` extra (the ``audit-logging``
command and ``audit_logging.writers`` import it), and only a
:class:`~audit_logging.writers.gcs.GcsSyncHandler` being built needs it.
"""

from __future__ import annotations

from typing import Any, Final

from audit_logging import bucket_layout, schema
from audit_logging._optional import require

INSTALL_HINT: Final = 'pip install "audit-logging[gcs]"'
#: Metadata key of the random token each write of ours carries.
TOKEN_KEY: Final = "audit-logging-sync"
#: Marked the temporary tail objects of the older compose mirror (skipped by readers).
TMP_MARK: Final = bucket_layout.OLD_TMP_MARK


def require_gcs() -> None:
    """Raise :class:`~audit_logging._optional.MissingExtraError` without google-cloud-storage."""
    require(
        "google.cloud.storage",
        extra="gcs",
        package="google-cloud-storage",
        feature="Mirroring logs to Google Cloud Storage",
    )


def bounded_retry(seconds: float) -> Any:
    """google-cloud-storage's default retry, bounded to ``seconds`` in total."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    # with_timeout is google-api-core >= 2.17's name; older versions only have with_deadline.
    bound = getattr(DEFAULT_RETRY, "with_timeout", None) or DEFAULT_RETRY.with_deadline
    return bound(max(seconds, 0.0))


# --------------------------------------------------------------------------- errors


class Outage(Exception):
    """The bucket cannot be used now: retried with backoff, reported once."""

    def __init__(self, kind: str, error: BaseException | str) -> None:
        super().__init__(str(error))
        self.kind = kind
        self.error = error


def classify(exc: BaseException) -> str | None:
    """The warning type of an outage for ``exc``, ``"conflict"``, or None (not a GCS error)."""
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    if isinstance(exc, auth.DefaultCredentialsError):
        return schema.WarningType.CREDENTIALS_MISSING.value
    if isinstance(exc, api.PreconditionFailed):
        return "conflict"
    # Not every OSError: a local one (disk full while saving the state) is not an outage.
    network: tuple[type[BaseException], ...] = (
        api.GoogleAPIError,
        auth.GoogleAuthError,
        ConnectionError,
        TimeoutError,
    )
    try:
        import requests

        network += (requests.RequestException,)
    except ImportError:  # pragma: no cover - a dependency of google-cloud-storage
        pass
    if isinstance(exc, network):
        return schema.WarningType.GCS_AUTH_FAILED.value
    return None


RECOMMENDATIONS: Final = {
    "credentials_missing": (
        "Provide credentials: `gcloud auth application-default login`, "
        "GOOGLE_APPLICATION_CREDENTIALS, or a service account on the VM. "
        "Local files are kept and will be sent once credentials are found."
    ),
    "gcs_auth_failed": (
        "Check that the bucket exists and that these credentials may create, get and "
        "list objects in it (roles/storage.objectCreator plus roles/storage.objectViewer); "
        "the mirror never replaces or deletes an object. Local files are kept and will "
        "be sent when reachable."
    ),
}
