"""Helpers shared by the plugin and end-to-end tests (their fixtures are in tests/conftest.py):
an SMTP recorder, Slack and Discord stand-ins, the example plugin's location, a sample message."""

from __future__ import annotations

import importlib.metadata
import socket
import time
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
