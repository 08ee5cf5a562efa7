"""Helpers shared by the plugin tests (fixtures are in conftest.py)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from trackops.core.channels import Message
from trackops.core.wire import Event, PackageStatus

SMTP_PASSWORD = "s3cret-Pa55word"


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
