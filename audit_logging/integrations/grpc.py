"""AuditServerInterceptor: every RPC of a grpcio server becomes one action entry.

::

    audit = AuditLogger("logs")
    server = grpc.server(ThreadPoolExecutor(4), interceptors=[AuditServerInterceptor(audit)])
    # grpc.aio: grpc.aio.server(interceptors=[AsyncAuditServerInterceptor(audit)])

Each call writes, through :meth:`AuditLogger.action` (so into
``audit_log.json`` / ``.csv``, never a file of its own), one entry:

* ``action_type``: ``action_types[full method]`` or ``action_types[method]``
  if given, else the method's name in snake_case (``SetHyperParams`` ->
  ``set_hyper_params``);
* ``status``: ``success``, or ``failed`` when the handler raised, aborted or
  set a status code other than OK;
* ``error``: ``"NOT_FOUND: no such run"`` (the gRPC status code and details),
  or the exception (``"UNKNOWN: ValueError: ..."``) when the handler raised;
* ``actor``: the caller's authenticated identity (``context.peer_identities()``,
  from a TLS client certificate), else the value of the request metadata key
  ``actor_metadata_key`` if one is given, else ``None``; a servicer may set
  ``current_action().actor`` itself;
* ``details``: ``method``, ``peer``, ``code``, ``duration_ms``, the
  ``request`` (protobuf messages through ``MessageToDict``, secrets redacted,
  cut to ``max_request_chars`` of JSON), for client-streaming calls the
  number of request messages and the first one, for server-streaming calls
  the number of responses sent; and ``before`` / ``after`` / ``changes`` when
  the servicer set them on :func:`current_action` (the same mechanism as
  :meth:`AuditLogger.action`).

The entry is written when the call ends (for a streaming response, when the
stream is exhausted or fails), in the handler's thread or task.
"""

from __future__ import annotations

import contextvars
import inspect
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

from audit_logging.facade import Action, AuditLogger
from audit_logging.integrations._common import MissingIntegrationError
from audit_logging.redact import redact

try:
    import grpc
    import grpc.aio
except ImportError as exc:  # pragma: no cover - the default install has grpcio
    raise MissingIntegrationError("grpc", "grpc") from exc

__all__ = ["AsyncAuditServerInterceptor", "AuditServerInterceptor", "current_action"]

_current: contextvars.ContextVar[Action | None] = contextvars.ContextVar(
    "audit_logging_grpc_action", default=None
)
_FIRST_CAP = re.compile(r"(.)([A-Z][a-z]+)")
_ALL_CAP = re.compile(r"([a-z0-9])([A-Z])")


def current_action() -> Action | None:
    """The entry being built for the RPC this servicer code runs in (``None`` outside one).

    Set ``before`` / ``after`` on it (and add to ``details``) to have them in the RPC's entry.
    """
    return _current.get()


def snake_case(name: str) -> str:
    """``SetHyperParams`` -> ``set_hyper_params``."""
    return _ALL_CAP.sub(r"\1_\2", _FIRST_CAP.sub(r"\1_\2", name)).lower()


class _Core:
    """What the sync and asyncio interceptors share: naming, request details, the status."""

    def __init__(
        self,
        audit: AuditLogger,
        action_types: Mapping[str, str] | Callable[[str], str] | None,
        max_request_chars: int,
        actor_metadata_key: str | None = None,
    ) -> None:
        self.audit = audit
        self.action_types = action_types
        self.max_request_chars = max_request_chars
        # gRPC metadata keys are lower case on the wire.
        self.actor_key = actor_metadata_key.lower() if actor_metadata_key else None

    def action_type(self, method: str) -> str:
        short = method.rsplit("/", 1)[-1]
        if callable(self.action_types):
            return self.action_types(method)
        if self.action_types is not None:
            for key in (method, short):
                if key in self.action_types:
                    return self.action_types[key]
        return snake_case(short)

    def message(self, message: Any) -> Any:
        """A request as redacted JSON-ready data, cut to ``max_request_chars``."""
        if hasattr(message, "DESCRIPTOR"):
            from google.protobuf.json_format import MessageToDict

            try:
                data: Any = MessageToDict(message, preserving_proto_field_name=True)
            except Exception as exc:  # a message MessageToDict refuses (unknown Any type)
                data = {"unreadable": f"{type(exc).__name__}: {exc}"}
        elif isinstance(message, (bytes, bytearray)):
            data = {"bytes": len(message)}
        else:
            data = message
        data = redact(data)
        text = json.dumps(data, default=repr, ensure_ascii=False)
        if len(text) > self.max_request_chars:
            cut = text[: self.max_request_chars]
            return {"truncated": True, "json_chars": len(text), "preview": cut}
        return data

    def start(self, method: str, context: Any) -> Action:
        details = {"method": method, "peer": _peer(context)}
        return Action(self.action_type(method), details=details, actor=self.actor(context))

    def actor(self, context: Any) -> str | None:
        """The authenticated identity of the caller, else the configured metadata key's value."""
        try:
            identities = context.peer_identities()
        except Exception:  # a context without authentication support
            identities = None
        if identities:
            first = identities[0]
            return first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)
        if self.actor_key is None:
            return None
        try:
            metadata = context.invocation_metadata() or ()
        except Exception:
            return None
        for item in metadata:
            key, value = item[0], item[1]
            if key == self.actor_key:
                return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        return None

    def finish(self, act: Action, context: Any, exc: BaseException | None, start: float) -> None:
        """Status and error from the context (abort, set_code) or the exception; log the entry."""
        code = _code(context)
        if exc is not None and code is None:
            code = grpc.StatusCode.UNKNOWN  # what grpc answers for an exception in a handler
        failed = exc is not None or (code is not None and code != grpc.StatusCode.OK)
        act.details["code"] = code.name if code is not None else "OK"
        if failed:
            act.status = "failed"
            parts = [code.name if code is not None else "UNKNOWN"]
            text = _details(context)
            if text:
                parts.append(text)
            # An abort raises a bare Exception: the status is the error then.
            if exc is not None and not _aborted(context, exc):
                parts.append(f"{type(exc).__name__}: {exc}")
            act.error = act.error or ": ".join(parts)
        self.audit.log_event(
            act.action_type,
            act.status,
            act.entry(exc, time.monotonic() - start),
            act.error,
            actor=act.actor,
        )


def _peer(context: Any) -> str | None:
    try:
        return str(context.peer())
    except Exception:
        return None


def _code(context: Any) -> Any:
    try:
        return context.code()
    except Exception:  # grpc before 1.38 has no code() on the server context
        return None


def _details(context: Any) -> str | None:
    try:
        text = context.details()
    except Exception:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text or None


def _aborted(context: Any, exc: BaseException) -> bool:
    """Whether ``exc`` is grpc's own signal of ``context.abort()`` (it says nothing more)."""
    if isinstance(exc, grpc.aio.AbortError):
        return True
    state = getattr(context, "_state", None)  # the sync server marks an abort only there
    return bool(getattr(state, "aborted", False))


def _rebuild(handler: Any, behavior: Callable[..., Any]) -> Any:
    """A handler like ``handler`` with ``behavior`` in place of its own."""
    kind = (
        ("stream" if handler.request_streaming else "unary")
        + "_"
        + ("stream" if handler.response_streaming else "unary")
    )
    factory = getattr(grpc, f"{kind}_rpc_method_handler")
    return factory(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _original(handler: Any) -> Callable[..., Any]:
    if handler.request_streaming:
        return handler.stream_stream if handler.response_streaming else handler.stream_unary  # type: ignore[no-any-return]
    return handler.unary_stream if handler.response_streaming else handler.unary_unary  # type: ignore[no-any-return]


class AuditServerInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Logs one action entry per RPC of a synchronous ``grpc.server``.

    ``action_types`` maps full method names (``/pkg.Service/Method``) or
    method names to action types, or is a function of the full name.
    """

    def __init__(
        self,
        audit: AuditLogger,
        action_types: Mapping[str, str] | Callable[[str], str] | None = None,
        *,
        max_request_chars: int = 4096,
        actor_metadata_key: str | None = None,
    ) -> None:
        self._core = _Core(audit, action_types, max_request_chars, actor_metadata_key)

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method
        core = self._core
        inner = _original(handler)

        if handler.response_streaming:

            def behavior(request: Any, context: Any) -> Iterator[Any]:
                act = core.start(method, context)
                start = time.monotonic()
                request = _record_request(core, act, request, handler.request_streaming)
                token = _current.set(act)
                sent = 0
                try:
                    for response in inner(request, context):
                        sent += 1
                        yield response
                except BaseException as exc:
                    act.details["responses"] = sent
                    core.finish(act, context, exc, start)
                    raise
                finally:
                    _current.reset(token)
                act.details["responses"] = sent
                core.finish(act, context, None, start)

        else:

            def behavior(request: Any, context: Any) -> Any:  # type: ignore[misc]
                act = core.start(method, context)
                start = time.monotonic()
                request = _record_request(core, act, request, handler.request_streaming)
                token = _current.set(act)
                try:
                    response = inner(request, context)
                except BaseException as exc:
                    core.finish(act, context, exc, start)
                    raise
                finally:
                    _current.reset(token)
                core.finish(act, context, None, start)
                return response

        return _rebuild(handler, behavior)


def _record_request(core: _Core, act: Action, request: Any, streaming: bool) -> Any:
    """Put the request (or, streaming, the count and first message) in the details."""
    if not streaming:
        act.details["request"] = core.message(request)
        return request
    act.details["requests"] = 0
    act.details["request"] = None

    def counted() -> Iterator[Any]:
        for message in request:
            if act.details["requests"] == 0:
                act.details["request"] = core.message(message)
            act.details["requests"] += 1
            yield message

    return counted()


def _record_async_request(core: _Core, act: Action, request: Any, streaming: bool) -> Any:
    if not streaming:
        act.details["request"] = core.message(request)
        return request
    act.details["requests"] = 0
    act.details["request"] = None

    async def counted() -> AsyncIterator[Any]:
        async for message in request:
            if act.details["requests"] == 0:
                act.details["request"] = core.message(message)
            act.details["requests"] += 1
            yield message

    return counted()


class AsyncAuditServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """The same entries as :class:`AuditServerInterceptor`, for ``grpc.aio.server``.

    The entry is written in the event loop's thread when the call ends (a few
    hundred microseconds: :class:`AuditLogger` writes before it returns).
    """

    def __init__(
        self,
        audit: AuditLogger,
        action_types: Mapping[str, str] | Callable[[str], str] | None = None,
        *,
        max_request_chars: int = 4096,
        actor_metadata_key: str | None = None,
    ) -> None:
        self._core = _Core(audit, action_types, max_request_chars, actor_metadata_key)

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method
        core = self._core
        inner = _original(handler)

        if handler.response_streaming:

            async def behavior(request: Any, context: Any) -> AsyncIterator[Any]:
                act = core.start(method, context)
                start = time.monotonic()
                request = _record_async_request(core, act, request, handler.request_streaming)
                token = _current.set(act)
                sent = 0
                try:
                    result = inner(request, context)
                    if inspect.isawaitable(result):
                        # A servicer that sends with ``await context.write()``: its
                        # responses are not ours to count.
                        await result
                    else:
                        async for response in result:
                            sent += 1
                            yield response
                except BaseException as exc:
                    act.details["responses"] = sent
                    core.finish(act, context, exc, start)
                    raise
                finally:
                    _current.reset(token)
                act.details["responses"] = sent
                core.finish(act, context, None, start)

        else:

            async def behavior(request: Any, context: Any) -> Any:  # type: ignore[misc]
                act = core.start(method, context)
                start = time.monotonic()
                request = _record_async_request(core, act, request, handler.request_streaming)
                token = _current.set(act)
                try:
                    response = await inner(request, context)
                except BaseException as exc:
                    core.finish(act, context, exc, start)
                    raise
                finally:
                    _current.reset(token)
                core.finish(act, context, None, start)
                return response

        return _rebuild(handler, behavior)
