"""What a notifier channel is given and what it promises.

The engine's dispatcher turns each pending notification row into a ``Message`` and hands it to
the channel named on the row. A channel either returns (sent) or raises ``ChannelError`` with a
reason a person can read (failed; the reason goes into the history row). Any other exception
from a plugin's channel is caught by the dispatcher and recorded the same way, so a broken
plugin never stops the others.

Channels come from plugins through the ``trackops_register_channels`` hook (see
``hookspecs.py``); tests and embedding code may also pass channels to ``Engine`` directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from trackops.core.wire import Event, PackageStatus

__all__ = ["Attachment", "Audience", "Channel", "ChannelError", "Message", "RecordingChannel"]

Audience = Literal["customer", "seller", "report"]


@dataclass(frozen=True)
class Attachment:
    """A file attached to a report or export message."""

    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Message:
    """One notification to deliver, with everything a channel needs to render it.

    ``notification_id`` is the history row's id. For ``audience == "report"`` the shipment
    fields are empty and ``subject``/``body``/``attachments`` carry the report.
    """

    notification_id: int
    audience: Audience
    channel: str
    recipient: str
    condition: str
    condition_kind: Literal["default", "custom"]
    number: str = ""
    order: str | None = None
    buyer_name: str | None = None
    tag: str | None = None
    carrier: int | None = None
    carrier_name: str = ""
    from_status: PackageStatus | None = None
    to_status: PackageStatus | None = None
    latest_event: Event | None = None
    origin_country: int | None = None
    destination_country: int | None = None
    tracking_url: str = ""
    created_at: datetime | None = None
    subject: str = ""
    body: str = ""
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)


class ChannelError(Exception):
    """A delivery failed; ``reason`` is recorded in the history (e.g. the SMTP reply).

    ``retryable`` False means trying again cannot help (a refused address), so the dispatcher
    records it as failed at once instead of spending more attempts.
    """

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        self.reason = reason
        self.retryable = retryable
        super().__init__(reason)


@runtime_checkable
class Channel(Protocol):
    """A notifier channel: ``name`` as used in config (``email``, ``slack`` ...) and ``send``."""

    name: str

    async def send(self, message: Message) -> None:
        """Deliver ``message`` or raise ``ChannelError``."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the engine closes."""
        ...


class RecordingChannel:
    """An in-process channel that keeps what it was given (for tests and the demo).

    ``fail_with`` makes every send fail with that reason.
    """

    def __init__(self, name: str = "memory", fail_with: str | None = None) -> None:
        self.name = name
        self.fail_with = fail_with
        self.sent: list[Message] = []

    async def send(self, message: Message) -> None:
        """Record the message, or raise ``ChannelError(fail_with)``."""
        if self.fail_with:
            raise ChannelError(self.fail_with)
        self.sent.append(message)

    async def aclose(self) -> None:
        """Nothing to release."""
