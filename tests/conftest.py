"""Shared fixtures. Each engineer appends the fixtures their tests share below."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller
from factories import SKIP_POSTGRES, StoreTarget, postgres_url
from plugin_helpers import (
    EXAMPLE,
    LATE_EXAMPLE,
    SmtpRecorder,
    SmtpServer,
    example_installed_here,
    free_port,
    installed_into,
)


def pytest_configure(config: pytest.Config) -> None:
    """A $TZ this machine does not know (no tz database) silently means UTC: the run under
    ``TZ=Asia/Tokyo`` (.ci/run, ``make test``) would then test nothing, so it stops instead."""
    zone = os.environ.get("TZ")
    if not zone:
        return
    offsets = {datetime(2026, m, 1, tzinfo=UTC).astimezone().utcoffset() for m in (1, 7)}
    if offsets == {timedelta(0)} and time.tzname[0] not in ("UTC", "UCT", "GMT", "+00", "-00"):
        raise pytest.UsageError(
            f"TZ={zone} is not a time zone this machine knows (it reads as UTC);"
            " install the tz database (tzdata) or use a POSIX form such as TZ=JST-9"
        )


# --------------------------------------------------------------------------- stores


@pytest.fixture(params=["sqlite", "postgresql"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreTarget]:
    """A fresh, empty database: ``tmp_path / "trackops.db"``, or a new PostgreSQL schema
    (skipped, saying why, when ``TRACKOPS_TEST_POSTGRES_URL`` is not set)."""
    if request.param == "sqlite":
        yield StoreTarget("sqlite", f"sqlite:///{tmp_path / 'trackops.db'}", {})
        return
    url = postgres_url()
    if not url:
        pytest.skip(SKIP_POSTGRES)
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        yield StoreTarget("postgresql", url, {"server_settings": {"search_path": schema}})
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


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
def example_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example plugin, installed into a temporary folder, never into this venv.

    ``examples/trackops-webhook-notifier`` is copied (so no build files land in the repo) and
    installed with ``pip install --target`` (no dependencies, no build isolation, no index:
    offline, a few seconds). The folder is put on ``sys.path`` for this process, where
    ``importlib.metadata`` finds its entry point, and on ``PYTHONPATH`` for the subprocesses
    tests start; both are taken back at the end of the session.
    """
    with installed_into(
        EXAMPLE, tmp_path_factory.mktemp("example-plugin"), "trackops_webhook_notifier"
    ):
        assert example_installed_here()
        yield EXAMPLE


@pytest.fixture(scope="module")
def late_parcels_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``examples/trackops-late-parcels`` installed into a temporary folder for one test
    module (never into this venv): its dashboard and ``/track`` additions must not show up in
    other modules' screens and help texts."""
    with installed_into(
        LATE_EXAMPLE, tmp_path_factory.mktemp("late-parcels"), "trackops_late_parcels"
    ) as target:
        yield target
