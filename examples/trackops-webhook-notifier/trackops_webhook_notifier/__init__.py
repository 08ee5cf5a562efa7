"""trackops plugin: ``webhook``, a channel that POSTs each notification as JSON.

Configure ``[channels.webhook] url`` (required; the channel is not registered without it),
``secret`` (optional; signs the body) and ``timeout`` (optional, seconds).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp
from trackops.core.channels import ChannelError, Message
from trackops.core.config import Settings
from trackops.core.plugins import hookimpl

__all__ = ["WebhookChannel", "message_to_json", "sign", "trackops_register_channels"]

__version__ = "0.1.0"

SIGNATURE_HEADER = "X-Trackops-Signature"


@hookimpl
def trackops_register_channels(register: Any, settings: Settings) -> None:
    """Register ``webhook`` when ``[channels.webhook] url`` is set."""
    table = settings.channels.table("webhook")
    url = str(table.get("url") or "").strip()
    if not url:
        return
    register(
        WebhookChannel(
            url,
            secret=str(table.get("secret") or ""),
            timeout=float(table.get("timeout") or 10),
        )
    )


def message_to_json(message: Message) -> dict[str, Any]:
    """``message`` as plain JSON values (statuses by name, times in ISO 8601)."""
    event = message.latest_event
    return {
        "notification_id": message.notification_id,
        "audience": message.audience,
        "channel": message.channel,
        "recipient": message.recipient,
        "condition": message.condition,
        "condition_kind": message.condition_kind,
        "number": message.number,
        "order": message.order,
        "buyer_name": message.buyer_name,
        "tag": message.tag,
        "carrier": message.carrier,
        "carrier_name": message.carrier_name,
        "from_status": message.from_status.slug if message.from_status is not None else None,
        "to_status": message.to_status.slug if message.to_status is not None else None,
        "latest_event": None
        if event is None
        else {
            "time": event.time_raw,
            "location": event.place,
            "description": event.description,
        },
        "origin_country": message.origin_country,
        "destination_country": message.destination_country,
        "tracking_url": message.tracking_url,
        "created_at": message.created_at.isoformat() if message.created_at else None,
        "subject": message.subject,
        "body": message.body,
        "attachments": [
            {"filename": a.filename, "mime_type": a.mime_type, "size": len(a.content)}
            for a in message.attachments
        ],
    }


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex HMAC>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookChannel:
    """POST each message as JSON to ``url``; 2xx is sent, 408/429/5xx are retried later."""

    name = "webhook"

    def __init__(self, url: str, *, secret: str = "", timeout: float = 10.0) -> None:
        self.url = url
        self._secret = secret
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def send(self, message: Message) -> None:
        """Deliver ``message`` or raise ``ChannelError`` with the receiver's answer."""
        body = json.dumps(message_to_json(message), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"trackops-webhook/{__version__}",
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        try:
            async with self._session.post(self.url, data=body, headers=headers) as response:
                status = response.status
                text = (await response.text())[:200].strip()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ChannelError(f"webhook unreachable: {exc or type(exc).__name__}") from None
        if 200 <= status < 300:
            return
        retryable = status in (408, 429) or status >= 500
        raise ChannelError(
            f"webhook answered {status}: {text or 'no details'}", retryable=retryable
        )

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
