"""Shared fixtures. Each engineer appends the fixtures their tests share below."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller
from plugin_helpers import (
    EXAMPLE,
    SmtpRecorder,
    SmtpServer,
    example_installed_here,
    free_port,
    venv_install_lock,
)

POSTGRES_URL_ENV = "TRACKOPS_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    """The PostgreSQL URL for store tests, or None (those tests then skip, saying why)."""
    return os.environ.get(POSTGRES_URL_ENV) or None


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Tests never read the developer's own config or carrier data."""
    monkeypatch.delenv("TRACKOPS_CONFIG", raising=False)
    monkeypatch.setenv("TRACKOPS_DATA_DIR", str(tmp_path_factory.mktemp("trackops-data")))


# --------------------------------------------------------------------------- local servers
# A real SMTP server, local HTTP stand-ins, a listener socket and the example plugin: used by
# tests/plugins and tests/test_end_to_end.py (helpers in tests/plugin_helpers.py).


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server on 127.0.0.1 that accepts AUTH without TLS (user shop)."""
    recorder = SmtpRecorder()
    port = free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        authenticator=recorder.authenticator,
        auth_require_tls=False,
        ready_timeout=5,
    )
    controller.start()
    try:
        yield SmtpServer(recorder, port)
    finally:
        controller.stop()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[web.Application], Awaitable[TestServer]]]:
    """``await serve(app)`` runs ``app`` on 127.0.0.1 until the test ends."""
    servers: list[TestServer] = []

    async def start(app: web.Application) -> TestServer:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
def listener_socket() -> Iterator[socket.socket]:
    """A bound loopback socket for the webhook listener, so its URL is known up front."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        yield sock


@pytest.fixture(scope="session")
def example_installed() -> Path:
    """The example plugin, installed into the current venv and importable in this process.

    Installs ``examples/trackops-webhook-notifier`` (editable, no dependencies, no build
    isolation: offline and about two seconds) unless it is there already.
    """
    with venv_install_lock():
        if not example_installed_here():
            result = subprocess.run(
                [
                    sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "-e", str(EXAMPLE),
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )  # fmt: skip
            if result.returncode != 0:
                pytest.fail(f"cannot install {EXAMPLE}:\n{result.stdout}\n{result.stderr}")
    importlib.invalidate_caches()
    try:
        importlib.import_module("trackops_webhook_notifier")
    except ImportError:
        # An editable install's import hook is set up by a .pth file, which only a new
        # interpreter reads; this process finds the package through its folder instead.
        sys.path.insert(0, str(EXAMPLE))
        importlib.import_module("trackops_webhook_notifier")
    assert example_installed_here()
    return EXAMPLE
