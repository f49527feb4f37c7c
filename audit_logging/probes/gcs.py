"""check_gcs(): can this run reach its bucket? Logs ``credentials_missing`` or ``gcs_auth_failed``.

Steps, each bounded in time:

1. Credentials, through google-auth's application default credentials
   (``GOOGLE_APPLICATION_CREDENTIALS``, the gcloud user config, the metadata
   server). None found -> ``credentials_missing``. Skipped when a ``client`` is
   given or ``STORAGE_EMULATOR_HOST`` is set (google-cloud-storage then talks to
   the emulator anonymously).
2. Credentials that do not refresh (revoked key, bad signature, no network)
   -> ``gcs_auth_failed``. A key file that exists but cannot be parsed is
   also ``gcs_auth_failed``, not ``credentials_missing``: someone configured
   credentials and they are broken, which needs a different fix than
   configuring some. ``GOOGLE_APPLICATION_CREDENTIALS`` naming a file that does
   not exist is ``credentials_missing``.
3. With a ``bucket``: list at most one object (``storage.objects.list``, which
   an object reader has, unlike ``buckets.get``). 401, 403, 404 or any other
   failure -> ``gcs_auth_failed`` with the HTTP status.

The warning carries the exception class and a short reason (at most 200
characters, passed through :func:`audit_logging.redact.redact_text`), never
key material: the credentials object itself is never logged, only its class
and service-account e-mail.

Time: every HTTP call gets ``timeout`` and a retry policy whose deadline is
``timeout``; and because google-auth's metadata-server detection and token
endpoint have their own retries, the whole probe runs in a daemon thread that
the caller waits for at most ``timeout`` seconds (plus a little). A probe
still running then is abandoned and reported as a ``gcs_auth_failed`` timeout.

The warning goes to ``logger``, by default ``logging.getLogger("audit_logging.probes")``.
Never raises.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

from audit_logging._optional import available
from audit_logging.redact import redact_text

__all__ = ["GcsStatus", "check_gcs"]

_LOGGER_NAME: Final = "audit_logging.probes"
_SCOPES: Final = ("https://www.googleapis.com/auth/devstorage.read_only",)
_REASON_CHARS: Final = 200
_RECOMMENDATIONS: Final = {
    "credentials_missing": (
        "Run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS "
        "to a service-account key file"
    ),
    "gcs_auth_failed": (
        "Check that the credentials are valid and that their account may read the bucket"
    ),
}


@dataclass(frozen=True)
class GcsStatus:
    """What :func:`check_gcs` found. ``warning_type`` is the warning logged, if any."""

    available: bool
    ok: bool = False
    credentials_found: bool = False
    bucket: str | None = None
    warning_type: str | None = None
    exception: str | None = None
    reason: str | None = None
    status_code: int | None = None
    credentials_type: str | None = None
    service_account: str | None = None
    elapsed: float = 0.0


def check_gcs(
    bucket: str | None = None,
    logger: logging.Logger | None = None,
    *,
    client: Any = None,
    timeout: float = 5.0,
) -> GcsStatus:
    """Check GCS credentials and, with ``bucket``, that the bucket can be listed.

    ``client`` is a ``google.cloud.storage.Client`` to use instead of one built
    from the application default credentials. Returns a :class:`GcsStatus`;
    logs ``credentials_missing`` or ``gcs_auth_failed`` on failure; never raises.
    """
    start = time.monotonic()
    if not available("google.cloud.storage"):
        return GcsStatus(
            available=False, bucket=bucket, reason="google-cloud-storage is not installed"
        )
    box: list[GcsStatus] = []
    worker = threading.Thread(
        target=lambda: box.append(_probe_safely(bucket, client, timeout)),
        name="audit_logging-check_gcs",
        daemon=True,  # abandoned if it overruns: it must not hold the interpreter at exit
    )
    worker.start()
    worker.join(timeout + 1.0)
    elapsed = time.monotonic() - start
    if box:
        status = _with_elapsed(box[0], elapsed)
    else:
        status = GcsStatus(
            available=True,
            bucket=bucket,
            warning_type="gcs_auth_failed",
            exception="TimeoutError",
            reason=f"no answer from GCS or the credential endpoints within {timeout:g} s",
            elapsed=elapsed,
        )
    if status.warning_type is not None:
        _log(status, logger or logging.getLogger(_LOGGER_NAME))
    return status


def _with_elapsed(status: GcsStatus, elapsed: float) -> GcsStatus:
    return GcsStatus(**{**status.__dict__, "elapsed": elapsed})


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return redact_text(text)[:_REASON_CHARS]


def _failure(
    bucket: str | None, kind: str, exc: BaseException, found: bool, **more: Any
) -> GcsStatus:
    code = getattr(exc, "code", None)
    return GcsStatus(
        available=True,
        bucket=bucket,
        credentials_found=found,
        warning_type=kind,
        exception=f"{type(exc).__module__}.{type(exc).__qualname__}",
        reason=_short(exc),
        status_code=code if isinstance(code, int) else None,
        **more,
    )


def _probe_safely(bucket: str | None, client: Any, timeout: float) -> GcsStatus:
    try:
        return _probe(bucket, client, timeout)
    except Exception as exc:  # anything unexpected is still "GCS does not work"
        return _failure(bucket, "gcs_auth_failed", exc, found=client is not None)


class _ClampedRequest:
    """A google-auth transport whose every call is bounded by ``timeout`` seconds."""

    def __init__(self, timeout: float) -> None:
        from google.auth.transport.requests import Request

        self._request = Request()
        self._timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        given = kwargs.get("timeout")
        kwargs["timeout"] = self._timeout if given is None else min(given, self._timeout)
        return self._request(*args, **kwargs)


def _probe(bucket: str | None, client: Any, timeout: float) -> GcsStatus:
    import google.auth
    from google.api_core import exceptions as api_exceptions
    from google.api_core.retry import Retry
    from google.auth import exceptions as auth_exceptions
    from google.cloud import storage

    more: dict[str, Any] = {}
    if client is None and os.environ.get("STORAGE_EMULATOR_HOST"):
        client = storage.Client()
    if client is None:
        try:
            credentials: Any
            credentials, project = google.auth.default(scopes=list(_SCOPES))
        except auth_exceptions.DefaultCredentialsError as exc:
            return _failure(bucket, _missing_or_broken(), exc, found=False)
        more = {
            "credentials_type": f"{type(credentials).__module__}.{type(credentials).__name__}",
            "service_account": getattr(credentials, "service_account_email", None),
        }
        try:
            credentials.refresh(_ClampedRequest(timeout))
        except (auth_exceptions.RefreshError, auth_exceptions.TransportError) as exc:
            return _failure(bucket, "gcs_auth_failed", exc, found=True, **more)
        client = storage.Client(project=project, credentials=credentials)
    if bucket is not None:
        retry = Retry(deadline=timeout)  # transient 5xx retried, but never past the deadline
        try:
            blobs = client.list_blobs(bucket, max_results=1, timeout=timeout, retry=retry)
            next(iter(blobs.pages), None)
        except (
            api_exceptions.GoogleAPICallError,
            api_exceptions.RetryError,
            auth_exceptions.GoogleAuthError,
        ) as exc:
            return _failure(bucket, "gcs_auth_failed", exc, found=True, **more)
    return GcsStatus(available=True, ok=True, credentials_found=True, bucket=bucket, **more)


def _missing_or_broken() -> str:
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    return "gcs_auth_failed" if path and os.path.exists(path) else "credentials_missing"


def _log(status: GcsStatus, logger: logging.Logger) -> None:
    assert status.warning_type is not None
    if status.warning_type == "credentials_missing":
        message = "GCS credentials not found"
    elif status.bucket is not None:
        message = f"GCS access to bucket {status.bucket!r} failed: {status.reason}"
    else:
        message = f"GCS credentials unusable: {status.reason}"
    details = {
        "bucket": status.bucket,
        "exception": status.exception,
        "reason": status.reason,
        "status_code": status.status_code,
        "credentials_type": status.credentials_type,
        "service_account": status.service_account,
    }
    try:
        logger.critical(
            message,
            extra={
                "warning_type": status.warning_type,
                "details": details,
                "recommendation": _RECOMMENDATIONS[status.warning_type],
            },
        )
    except Exception:
        pass  # a broken handler set-up must not stop the run
