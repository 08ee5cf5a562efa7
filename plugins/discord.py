"""Built-in plugin ``discord``: the ``discord`` channel, an embed posted to a Discord webhook.

Settings: ``[channels.discord] webhook_url`` (registered only when set); optional
``max_retry_wait`` (seconds, default 10) and ``timeout``.

The embed's title is the headline, its URL the tracking link, its colour the new status
(green delivered, red alert, orange undelivered ...), with fields for status, carrier, latest
event and order. Mentions are disabled, so an event text cannot ping ``@everyone``.

Discord answers 204 (or 200) when the message is posted. A 429 carries ``retry_after``
(seconds, in the JSON body, and/or the ``Retry-After`` header): the channel waits that long and
tries again, at most ``max_retries`` times and only if the wait is within ``max_retry_wait``;
otherwise the attempt fails as retryable so the dispatcher tries later. The webhook URL
embeds a secret and never appears in a reason or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any, Final

from trackops.core.channels import ChannelError, Message
from trackops.core.config import Settings
from trackops.core.hookspecs import RegisterChannel, hookimpl
from trackops.core.wire import PackageStatus
from trackops.plugins.messages import event_view, headline, route, status_name

if TYPE_CHECKING:
    # aiohttp is imported when a message is sent: loading the plugin (e.g. for the CLI's
    # list of commands) costs nothing.
    import aiohttp

__all__ = ["STATUS_COLOURS", "DiscordChannel", "build_payload", "trackops_register_channels"]

STATUS_COLOURS: Final[dict[PackageStatus | None, int]] = {
    PackageStatus.NOT_FOUND: 0x9CA3AF,
    PackageStatus.IN_TRANSIT: 0x3B82F6,
    PackageStatus.EXPIRED: 0x6B7280,
    PackageStatus.PICK_UP: 0x8B5CF6,
    PackageStatus.UNDELIVERED: 0xF59E0B,
    PackageStatus.DELIVERED: 0x22C55E,
    PackageStatus.ALERT: 0xEF4444,
    None: 0x64748B,
}
"""Embed colour by the new status (``None``: reports)."""


@hookimpl
def trackops_register_channels(register: RegisterChannel, settings: Settings) -> None:
    """Register ``discord`` when ``[channels.discord] webhook_url`` is set."""
    table = settings.channels.table("discord")
    url = str(table.get("webhook_url") or "").strip()
    if not url:
        return
    register(
        DiscordChannel(
            url,
            max_retry_wait=float(table.get("max_retry_wait") or 10.0),
            timeout=float(table.get("timeout") or 30.0),
        )
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_payload(message: Message) -> dict[str, Any]:
    """The webhook JSON for ``message``: one embed, mentions disabled."""
    embed: dict[str, Any] = {
        "title": _clip(headline(message), 256),
        "color": STATUS_COLOURS.get(message.to_status, STATUS_COLOURS[None]),
        "footer": {"text": f"{message.condition} ({message.condition_kind}) · trackops"},
    }
    if message.audience == "report":
        embed["description"] = _clip(message.body or "(empty report)", 4096)
        if message.attachments:
            names = ", ".join(a.filename for a in message.attachments)
            embed["fields"] = [{"name": "Attachments (sent by email)", "value": _clip(names, 1024)}]
        return {"embeds": [embed], "allowed_mentions": {"parse": []}}
    if message.tracking_url:
        embed["url"] = message.tracking_url
    fields: list[dict[str, Any]] = []

    def field(name: str, value: str, inline: bool = True) -> None:
        if value:
            fields.append({"name": name, "value": _clip(value, 1024), "inline": inline})

    change = status_name(message.to_status)
    if message.from_status is not None and message.from_status != message.to_status:
        change = f"{status_name(message.from_status)} → {change}"
    field("Status", change)
    field("Carrier", message.carrier_name or "not known yet")
    field("Order", message.order or "")
    field("Tracking number", message.number)
    field("Route", route(message))
    event = event_view(message)
    if event is not None:
        field("Latest event", str(event), inline=False)
        if message.latest_event is not None and message.latest_event.time is not None:
            embed["timestamp"] = message.latest_event.time.isoformat() + "Z"
    embed["fields"] = fields
    return {"embeds": [embed], "allowed_mentions": {"parse": []}}


def _retry_after(headers: Any, body: Any) -> float | None:
    candidates: list[Any] = []
    if isinstance(body, dict):
        candidates.append(body.get("retry_after"))
    candidates.append(headers.get("Retry-After"))
    for value in candidates:
        with contextlib.suppress(TypeError, ValueError):
            if value is not None:
                return max(0.0, float(value))
    return None


class DiscordChannel:
    """The ``discord`` channel: POST an embed to a webhook URL, honouring 429 ``retry_after``."""

    name = "discord"

    def __init__(
        self,
        webhook_url: str,
        *,
        max_retry_wait: float = 10.0,
        max_retries: int = 3,
        timeout: float = 30.0,
    ) -> None:
        self._url = webhook_url
        self.max_retry_wait = max_retry_wait
        self.max_retries = max_retries
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        return self._session

    def _scrub(self, text: str) -> str:
        return text.replace(self._url, "********")

    async def send(self, message: Message) -> None:
        """Post ``message``; wait and retry on 429; raise ``ChannelError`` otherwise."""
        import aiohttp

        payload = build_payload(message)
        for attempt in range(self.max_retries + 1):
            try:
                async with self._get_session().post(self._url, json=payload) as response:
                    status = response.status
                    text = await response.text()
                    headers = response.headers
            except (aiohttp.ClientError, TimeoutError) as exc:
                detail = str(exc) or type(exc).__name__
                raise ChannelError(
                    self._scrub(f"Discord webhook unreachable: {detail}"), retryable=True
                ) from None
            if status in (200, 204):
                return
            body: Any = None
            with contextlib.suppress(ValueError):
                body = json.loads(text) if text else None
            if status == 429:
                wait = _retry_after(headers, body)
                if wait is None:
                    wait = 1.0
                if attempt < self.max_retries and wait <= self.max_retry_wait:
                    await asyncio.sleep(wait)
                    continue
                raise ChannelError(f"Discord rate limit: retry after {wait:g}s", retryable=True)
            said = body.get("message") if isinstance(body, dict) else None
            code = body.get("code") if isinstance(body, dict) else None
            reason = f"Discord answered {status}"
            if said:
                reason += f": {said}" + (f" (code {code})" if code else "")
            elif text:
                reason += f": {text[:200]}"
            raise ChannelError(self._scrub(reason), retryable=status >= 500)
        raise ChannelError("Discord rate limit: too many retries", retryable=True)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
