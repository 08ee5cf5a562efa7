"""Helpers shared by the plugin and end-to-end tests (their fixtures are in tests/conftest.py):
an SMTP recorder, Slack and Discord stand-ins, the example plugin's location, a sample message."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from trackops.core.channels import Message
from trackops.core.wire import Event, PackageStatus

SMTP_PASSWORD = "s3cret-Pa55word"
SLACK_TOKEN = "xoxb-1234-secret-token"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "trackops-webhook-notifier"
EXAMPLE_DIST = "trackops-webhook-notifier"
LATE_EXAMPLE = EXAMPLE.parent / "trackops-late-parcels"
"""The example plugin that extends the front-ends (CLI, dashboard, Slack)."""


def free_port() -> int:
    """A TCP port nobody listens on right now (aiosmtpd's Controller cannot take port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SmtpRecorder:
    """An aiosmtpd handler that keeps every envelope and refuses chosen addresses."""

    envelopes: list[Envelope] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, rcpt_options: list
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticator(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        return AuthResult(success=login == "shop" and password == SMTP_PASSWORD, handled=False)


@dataclass
class SmtpServer:
    recorder: SmtpRecorder
    port: int


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


EVENT = Event(
    time_raw="2026-11-20 14:05:00",
    location="Köln",
    location_detail="Paketzentrum",
    description="Out for delivery — Zustellung heute",
)


def make_message(**changes: Any) -> Message:
    """A customer message for order 1001, RR123456789CN, In transit -> Pick up."""
    base = Message(
        notification_id=7,
        audience="customer",
        channel="email",
        recipient="buyer@example.com",
        condition="customer",
        condition_kind="default",
        number="RR123456789CN",
        order="1001",
        buyer_name="Zoë Müller",
        carrier=3011,
        carrier_name="China Post",
        from_status=PackageStatus.IN_TRANSIT,
        to_status=PackageStatus.PICK_UP,
        latest_event=EVENT,
        origin_country=301,
        destination_country=1404,
        tracking_url="https://t.17track.net/en#nums=RR123456789CN",
        created_at=datetime(2026, 11, 20, 15, 0),
    )
    return replace(base, **changes)


# --------------------------------------------------------------------------- HTTP stand-ins


class FakeSlack:
    """Records what Slack would receive; answers like Slack does.

    Incoming webhook: ``/services/T0/B0/ok`` (records the JSON in ``webhook_posts``) and
    ``/services/T0/B0/gone`` (404 ``no_service``); Web API: ``/api/chat.postMessage``
    (bot token ``SLACK_TOKEN``, channel ``#shipping``; calls in ``api_calls``).
    """

    def __init__(self) -> None:
        self.webhook_posts: list[dict[str, Any]] = []
        self.api_calls: list[tuple[str, str, dict[str, Any]]] = []
        self.app = web.Application()
        self.app.router.add_post("/services/T0/B0/ok", self.webhook_ok)
        self.app.router.add_post("/services/T0/B0/gone", self.webhook_gone)
        self.app.router.add_post("/api/chat.postMessage", self.post_message)

    async def webhook_ok(self, request: web.Request) -> web.Response:
        self.webhook_posts.append(await request.json())
        return web.Response(text="ok")

    async def webhook_gone(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text="no_service")

    async def post_message(self, request: web.Request) -> web.Response:
        body = await request.json()
        auth = request.headers.get("Authorization", "")
        self.api_calls.append((request.path, auth, body))
        if auth != f"Bearer {SLACK_TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if body.get("channel") != "#shipping":
            return web.json_response({"ok": False, "error": "channel_not_found"})
        return web.json_response({"ok": True, "channel": "C1", "ts": "1700000000.000100"})


class FakeDiscord:
    """A Discord webhook at ``/api/webhooks/1/secret-token`` that answers the queued responses
    in order, then 204; ``calls`` holds (monotonic time, JSON payload) of every request."""

    def __init__(self, *responses: web.Response) -> None:
        self.responses = list(responses)
        self.calls: list[tuple[float, dict[str, Any]]] = []
        self.app = web.Application()
        self.app.router.add_post("/api/webhooks/1/secret-token", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((time.monotonic(), await request.json()))
        if self.responses:
            return self.responses.pop(0)
        return web.Response(status=204)


# --------------------------------------------------------------------------- the example plugin


def example_installed_here() -> bool:
    """True when the example plugin's distribution and its ``trackops`` entry point exist."""
    try:
        dist = importlib.metadata.distribution(EXAMPLE_DIST)
    except importlib.metadata.PackageNotFoundError:
        return False
    return any(ep.group == "trackops" and ep.name == "webhook" for ep in dist.entry_points)


@contextlib.contextmanager
def installed_into(source: Path, work: Path, module: str) -> Iterator[Path]:
    """``source`` (a plugin's folder) installed into ``work/site``, never into this venv.

    The folder is copied (so no build files land in the repo) and installed with ``pip install
    --target`` (no dependencies, no build isolation, no index: offline, a few seconds). The
    target is put on ``sys.path`` for this process, where ``importlib.metadata`` finds its
    entry point, and on ``PYTHONPATH`` for the subprocesses tests start; both are taken back
    on exit, with ``module``'s imports.
    """
    copy = work / "src"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = work / "site"
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--no-build-isolation", "--no-index", "--target", str(target), str(copy),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"cannot install {source}:\n{result.stdout}\n{result.stderr}")
    old_pythonpath = os.environ.get("PYTHONPATH")
    sys.path.insert(0, str(target))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(target), old_pythonpath) if p)
    importlib.invalidate_caches()
    try:
        importlib.import_module(module)
        yield target
    finally:
        sys.path.remove(str(target))
        if old_pythonpath is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_pythonpath
        for name in [m for m in sys.modules if m.split(".")[0] == module]:
            del sys.modules[name]
        importlib.invalidate_caches()
