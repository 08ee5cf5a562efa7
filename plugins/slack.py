"""Built-in plugin ``slack``: the ``slack`` notifier channel (not the ``/track`` bot).

Settings, one of two ways::

    [channels.slack]
    webhook_url = "https://hooks.slack.com/services/..."    # an incoming webhook

    [channels.slack]
    bot_token = "env:SLACK_BOT_TOKEN"                      # chat.postMessage as a bot
    channel = "#shipping"
    api_base_url = "https://slack.com/api/"                # optional (tests, proxies)

The channel is registered only when one of them is configured (a ``webhook_url``, or a
``bot_token`` with a ``channel``); a ``bot_token`` without ``channel`` is a config error.
Messages are Block Kit built with ``slack_sdk.models.blocks``: a header with the headline, a
section with status, carrier, route (country names), latest event and order, and the tracking
link. Slack's refusal becomes ``ChannelError`` with Slack's error string (``channel_not_found``,
``invalid_auth`` ...); neither the token nor the webhook URL (which embeds a secret) ever
appears in a reason or a log line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from trackops.core.channels import ChannelError, Message
from trackops.core.config import ConfigError, Settings
from trackops.core.hookspecs import RegisterChannel, hookimpl
from trackops.plugins.messages import event_view, headline, route, status_name

if TYPE_CHECKING:
    # aiohttp and slack_sdk are imported when a message is built or sent: loading the plugin
    # (e.g. for the CLI's list of commands) costs nothing.
    import aiohttp
    from slack_sdk.models.blocks import Block
    from slack_sdk.web.async_client import AsyncWebClient

__all__ = ["SlackChannel", "build_blocks", "trackops_register_channels"]

DEFAULT_API_BASE_URL: Final = "https://slack.com/api/"
_RETRYABLE_ERRORS: Final = frozenset(
    {"ratelimited", "rate_limited", "service_unavailable", "fatal_error", "internal_error"}
)


@hookimpl
def trackops_register_channels(register: RegisterChannel, settings: Settings) -> None:
    """Register ``slack`` when ``[channels.slack]`` has a webhook URL or a bot token."""
    table = settings.channels.table("slack")
    webhook_url = str(table.get("webhook_url") or "").strip()
    token = str(table.get("bot_token") or "").strip()
    channel = str(table.get("channel") or "").strip()
    if not webhook_url and not token:
        return
    if token and not channel and not webhook_url:
        where = f"{settings.path}: " if settings.path else ""
        raise ConfigError(
            f"{where}[channels.slack] channel: expected the channel to post to"
            ' (e.g. "#shipping") with bot_token, found nothing'
        )
    register(
        SlackChannel(
            webhook_url=webhook_url or None,
            bot_token=token or None,
            channel=channel or None,
            api_base_url=str(table.get("api_base_url") or DEFAULT_API_BASE_URL),
            timeout=float(table.get("timeout") or 30),
        )
    )


def _escape(text: str) -> str:
    # Slack's mrkdwn control characters; escaping them also stops a carrier's event text
    # from pinging <!channel> or forging links.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_blocks(message: Message) -> tuple[str, list[Block]]:
    """The fallback text and Block Kit blocks for ``message``."""
    from slack_sdk.models.blocks import (
        ContextBlock,
        HeaderBlock,
        MarkdownTextObject,
        PlainTextObject,
        SectionBlock,
    )

    title = headline(message)
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=_clip(title, 150)))]
    if message.audience == "report":
        body = message.body or "(empty report)"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_clip(_escape(body), 3000))))
        if message.attachments:
            names = ", ".join(a.filename for a in message.attachments)
            blocks.append(
                ContextBlock(
                    elements=[
                        MarkdownTextObject(
                            text=_clip(f"Attachments (sent by email): {names}", 2000)
                        )
                    ]
                )
            )
        return title, blocks
    fields: list[MarkdownTextObject] = []

    def field(label: str, value: str) -> None:
        if value:
            fields.append(MarkdownTextObject(text=_clip(f"*{label}*\n{_escape(value)}", 2000)))

    change = status_name(message.to_status)
    if message.from_status is not None and message.from_status != message.to_status:
        change = f"{status_name(message.from_status)} → {change}"
    field("Status", change)
    field("Carrier", message.carrier_name or "not known yet")
    field("Route", route(message))
    field("Order", message.order or "")
    event = event_view(message)
    if event is not None:
        field("Latest event", str(event))
    number = _escape(message.number)
    if message.tracking_url:
        text = f"Tracking number <{_escape(message.tracking_url)}|{number}>"
    else:
        text = f"Tracking number {number}"
    blocks.append(SectionBlock(text=MarkdownTextObject(text=text), fields=fields[:10]))
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=_escape(f"{message.condition} ({message.condition_kind}) · trackops")
                )
            ]
        )
    )
    return title, blocks


class SlackChannel:
    """The ``slack`` channel: incoming webhook, or ``chat.postMessage`` with a bot token."""

    name = "slack"

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        bot_token: str | None = None,
        channel: str | None = None,
        api_base_url: str = DEFAULT_API_BASE_URL,
        timeout: float = 30.0,
    ) -> None:
        if not webhook_url and not (bot_token and channel):
            raise ValueError("SlackChannel needs webhook_url, or bot_token and channel")
        self._webhook_url = webhook_url
        self._token = bot_token
        self._channel = channel
        self._base_url = api_base_url if api_base_url.endswith("/") else api_base_url + "/"
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        return self._session

    def _scrub(self, text: str) -> str:
        for secret in (self._token, self._webhook_url):
            if secret:
                text = text.replace(secret, "********")
        return text

    async def send(self, message: Message) -> None:
        """Post ``message``; raise ``ChannelError`` with Slack's error string on refusal."""
        text, blocks = build_blocks(message)
        payload_blocks = [b.to_dict() for b in blocks]
        if self._webhook_url:
            await self._post_webhook(text, payload_blocks)
        else:
            await self._post_message(text, payload_blocks)

    async def _post_webhook(self, text: str, blocks: list[dict[str, Any]]) -> None:
        import aiohttp

        assert self._webhook_url is not None
        try:
            async with self._get_session().post(
                self._webhook_url, json={"text": text, "blocks": blocks}
            ) as response:
                body = (await response.text())[:300].strip()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            detail = type(exc).__name__ if isinstance(exc, TimeoutError) else str(exc)
            raise ChannelError(
                self._scrub(f"Slack webhook unreachable: {detail}"), retryable=True
            ) from None
        if status == 200:
            return
        reason = f"Slack webhook answered {status}: {body or 'no details'}"
        retryable = status == 429 or status >= 500
        raise ChannelError(self._scrub(reason), retryable=retryable)

    async def _post_message(self, text: str, blocks: list[dict[str, Any]]) -> None:
        import aiohttp
        from slack_sdk.errors import SlackApiError, SlackClientError
        from slack_sdk.web.async_client import AsyncWebClient

        assert self._channel is not None  # __init__: a bot token comes with a channel
        if self._client is None:
            self._client = AsyncWebClient(
                token=self._token,
                base_url=self._base_url,
                timeout=int(self._timeout),
                session=self._get_session(),
            )
        try:
            await self._client.chat_postMessage(channel=self._channel, text=text, blocks=blocks)
        except SlackApiError as exc:
            error = ""
            response = getattr(exc, "response", None)
            if response is not None:
                try:
                    error = str(response.get("error") or "")
                except Exception:  # a response that is not JSON
                    error = ""
                status = getattr(response, "status_code", 0)
            else:
                status = 0
            error = error or f"HTTP {status}"
            retryable = error in _RETRYABLE_ERRORS or status == 429 or status >= 500
            raise ChannelError(
                self._scrub(f"Slack refused: {error}"), retryable=retryable
            ) from None
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise ChannelError(
                self._scrub(f"Slack unreachable: {detail}"), retryable=True
            ) from None

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
        self._client = None
