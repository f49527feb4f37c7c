"""AuditServerInterceptor: a real grpcio server on 127.0.0.1, a real client, the entries read back.

Messages are protobuf's well-known ``Struct`` (a real protobuf message with no
.proto to compile), served through grpc's generic handlers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

grpc = pytest.importorskip("grpc")
struct_pb2 = pytest.importorskip("google.protobuf.struct_pb2")

from audit_logging import AuditLogger  # noqa: E402
from audit_logging.integrations.grpc import (  # noqa: E402
    AsyncAuditServerInterceptor,
    AuditServerInterceptor,
    current_action,
    snake_case,
)

Struct = struct_pb2.Struct
SERVICE = "test.Trainer"
STATE: dict[str, Any] = {"lr": 0.01, "momentum": 0.9}


def struct(**fields: Any) -> Any:
    message = Struct()
    message.update(fields)
    return message


def set_hyper_params(request: Any, context: Any) -> Any:
    act = current_action()
    assert act is not None
    act.before = dict(STATE)
    STATE.update({k: v for k, v in request.items() if k != "api_key"})
    act.after = dict(STATE)
    return struct(ok=True)


def explode(request: Any, context: Any) -> Any:
    raise ValueError("division of the learning rate by zero")


def get_run(request: Any, context: Any) -> Any:
    context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request['run']}")


def stream_metrics(request: Any, context: Any) -> Iterator[Any]:
    for step in range(int(request["steps"])):
        yield struct(step=step, loss=1.0 / (step + 1))


def upload_samples(requests: Iterator[Any], context: Any) -> Any:
    return struct(count=sum(1 for _ in requests))


def _handlers() -> Any:
    s, d = Struct.SerializeToString, Struct.FromString
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "SetHyperParams": grpc.unary_unary_rpc_method_handler(set_hyper_params, d, s),
            "Explode": grpc.unary_unary_rpc_method_handler(explode, d, s),
            "GetRun": grpc.unary_unary_rpc_method_handler(get_run, d, s),
            "StreamMetrics": grpc.unary_stream_rpc_method_handler(stream_metrics, d, s),
            "UploadSamples": grpc.stream_unary_rpc_method_handler(upload_samples, d, s),
        },
    )


def _call(channel: Any, kind: str, method: str) -> Any:
    return getattr(channel, kind)(
        f"/{SERVICE}/{method}",
        request_serializer=Struct.SerializeToString,
        response_deserializer=Struct.FromString,
    )


def entries(folder: Path) -> dict[str, dict[str, Any]]:
    """The action entries of audit_log.json, by action type (one each in these tests)."""
    data = json.loads((folder / "audit_log.json").read_text(encoding="utf-8"))
    by_type = {e["action_type"]: e for e in data}
    assert len(by_type) == len(data)
    return by_type


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    STATE.clear()
    STATE.update({"lr": 0.01, "momentum": 0.9})
    audit = AuditLogger(tmp_path / "audit", format="json,csv")
    srv = grpc.server(
        ThreadPoolExecutor(2),
        interceptors=[AuditServerInterceptor(audit, {"UploadSamples": "sample_upload"})],
    )
    srv.add_generic_rpc_handlers((_handlers(),))
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel, tmp_path / "audit"
    finally:
        channel.close()
        srv.stop(None).wait()
        audit.close()


def test_unary_call_logs_request_peer_and_before_after(server: tuple[Any, Path]) -> None:
    channel, folder = server
    reply = _call(channel, "unary_unary", "SetHyperParams")(struct(lr=0.001, api_key="sk-live-123"))
    assert reply["ok"] is True
    entry = entries(folder)["set_hyper_params"]
    assert entry["status"] == "success" and entry["error"] is None
    details = entry["details"]
    assert details["method"] == f"/{SERVICE}/SetHyperParams"
    assert details["peer"].startswith("ipv4:127.0.0.1:")
    assert details["code"] == "OK"
    assert details["request"]["lr"] == 0.001
    assert "sk-live-123" not in json.dumps(entry)  # redacted
    assert details["before"] == {"lr": 0.01, "momentum": 0.9}
    assert details["after"] == {"lr": 0.001, "momentum": 0.9}
    assert details["changes"] == [{"key": "lr", "old": 0.01, "new": 0.001}]
    assert details["duration_ms"] >= 0
    # The CSV holds the same entry.
    csv_text = (folder / "audit_log.csv").read_text(encoding="utf-8")
    assert "set_hyper_params" in csv_text and "sk-live-123" not in csv_text


def test_handler_that_raises_is_failed_with_the_exception(server: tuple[Any, Path]) -> None:
    channel, folder = server
    with pytest.raises(grpc.RpcError) as caught:
        _call(channel, "unary_unary", "Explode")(struct(x=1))
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    entry = entries(folder)["explode"]
    assert entry["status"] == "failed"
    assert entry["error"] == "UNKNOWN: ValueError: division of the learning rate by zero"
    assert entry["details"]["code"] == "UNKNOWN"
    assert entry["details"]["exception_type"] == "ValueError"


def test_aborted_call_is_failed_with_the_status(server: tuple[Any, Path]) -> None:
    channel, folder = server
    with pytest.raises(grpc.RpcError) as caught:
        _call(channel, "unary_unary", "GetRun")(struct(run="r-404"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    entry = entries(folder)["get_run"]
    assert entry["status"] == "failed"
    assert entry["error"] == "NOT_FOUND: no run r-404"
    assert entry["details"]["request"] == {"run": "r-404"}


def test_streaming_methods_count_their_messages(server: tuple[Any, Path]) -> None:
    channel, folder = server
    replies = list(_call(channel, "unary_stream", "StreamMetrics")(struct(steps=4)))
    assert [r["step"] for r in replies] == [0, 1, 2, 3]
    upload = _call(channel, "stream_unary", "UploadSamples")
    assert upload(iter([struct(i=i) for i in range(3)]))["count"] == 3
    found = entries(folder)
    stream = found["stream_metrics"]
    assert stream["status"] == "success" and stream["details"]["responses"] == 4
    assert stream["details"]["request"] == {"steps": 4.0}
    uploaded = found["sample_upload"]  # named by the mapping
    assert uploaded["details"]["requests"] == 3
    assert uploaded["details"]["request"] == {"i": 0.0}


def test_large_requests_are_cut(tmp_path: Path) -> None:
    audit = AuditLogger(tmp_path, format="json")
    interceptor = AuditServerInterceptor(audit, max_request_chars=100)
    cut = interceptor._core.message(struct(blob="x" * 1000))
    assert cut["truncated"] is True and cut["json_chars"] > 1000 and len(cut["preview"]) == 100


def test_snake_case() -> None:
    assert snake_case("SetHyperParams") == "set_hyper_params"
    assert snake_case("GetHTTPStatus") == "get_http_status"
    assert snake_case("pause") == "pause"


def test_asyncio_server(tmp_path: Path) -> None:
    audit = AuditLogger(tmp_path, format="json")

    async def pause(request: Any, context: Any) -> Any:
        act = current_action()
        assert act is not None
        act.before, act.after = {"paused": False}, {"paused": True}
        return struct(ok=True)

    async def denied(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "read-only user")

    async def broken(request: Any, context: Any) -> Any:
        raise RuntimeError("queue closed")

    async def tail(request: Any, context: Any) -> Any:
        for i in range(3):
            yield struct(line=i)

    async def push(request: Any, context: Any) -> None:
        for i in range(2):
            await context.write(struct(line=i))

    async def main() -> None:
        s, d = Struct.SerializeToString, Struct.FromString
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Pause": grpc.unary_unary_rpc_method_handler(pause, d, s),
                "Denied": grpc.unary_unary_rpc_method_handler(denied, d, s),
                "Broken": grpc.unary_unary_rpc_method_handler(broken, d, s),
                "Tail": grpc.unary_stream_rpc_method_handler(tail, d, s),
                "Push": grpc.unary_stream_rpc_method_handler(push, d, s),
            },
        )
        srv = grpc.aio.server(interceptors=[AsyncAuditServerInterceptor(audit)])
        srv.add_generic_rpc_handlers((handler,))
        port = srv.add_insecure_port("127.0.0.1:0")
        await srv.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                assert (await _call(channel, "unary_unary", "Pause")(struct()))["ok"] is True
                for method, code in (("Denied", "PERMISSION_DENIED"), ("Broken", "UNKNOWN")):
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await _call(channel, "unary_unary", method)(struct())
                    assert caught.value.code().name == code
                lines = [r async for r in _call(channel, "unary_stream", "Tail")(struct())]
                assert len(lines) == 3
                pushed = [r async for r in _call(channel, "unary_stream", "Push")(struct())]
                assert [r["line"] for r in pushed] == [0, 1]
        finally:
            await srv.stop(None)

    asyncio.run(main())
    found = entries(tmp_path)
    assert found["pause"]["status"] == "success"
    assert found["pause"]["details"]["changes"] == [{"key": "paused", "old": False, "new": True}]
    assert found["denied"]["status"] == "failed"
    assert found["denied"]["error"] == "PERMISSION_DENIED: read-only user"
    assert found["broken"]["error"] == "UNKNOWN: RuntimeError: queue closed"
    assert found["tail"]["details"]["responses"] == 3
    assert found["push"]["status"] == "success"  # sent with context.write(): not counted
    audit.close()


def test_the_actor_comes_from_the_configured_metadata_key(tmp_path: Path) -> None:
    audit = AuditLogger(tmp_path, format="json,csv")
    srv = grpc.server(
        ThreadPoolExecutor(2),
        interceptors=[AuditServerInterceptor(audit, actor_metadata_key="X-Audit-User")],
    )
    srv.add_generic_rpc_handlers((_handlers(),))
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        call = _call(channel, "unary_unary", "SetHyperParams")
        call(struct(lr=0.5), metadata=(("x-audit-user", "alice@example.com"),))
        list(_call(channel, "unary_stream", "StreamMetrics")(struct(steps=1)))
    finally:
        channel.close()
        srv.stop(None).wait()
        audit.close()
    found = entries(tmp_path)
    assert found["set_hyper_params"]["actor"] == "alice@example.com"
    assert found["stream_metrics"]["actor"] is None  # not authenticated, no key sent
    # The spreadsheet keeps its five columns.
    header = (tmp_path / "audit_log.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "timestamp,action_type,status,details,error"
