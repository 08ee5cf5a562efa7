"""The ``slack_bot`` notifier channel: live seller alerts to subscribed Slack channels.

``/track subscribe`` stores a subscription (channel ``slack_bot``, target: the Slack channel
id); the engine's rules then create one notification row per subscription whose statuses
contain the alert's status, with the Slack channel id as recipient, and the dispatcher hands
each row to this channel. It posts Block Kit (``blocks.alert_blocks``, with Stop, Retrack and
History buttons) through ``chat.postMessage`` at ``[slack] api_base_url``. Slack's 429 answers
are honoured by slack_sdk's rate-limit retry handler (``Retry-After``); a post Slack refuses
raises ``ChannelError`` with Slack's error string, so the history row is failed with it. The
bot token is never part of a reason, a log line or a repr.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from trackops.bots.app import ALERT_CHANNEL, make_web_client, valid_channel_id
from trackops.core.channels import ChannelError, Message
from trackops.core.config import SlackBotSettings

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

__all__ = ["SlackAlertChannel"]

log = logging.getLogger("trackops.bots.alerts")

_RETRYABLE: Final = frozenset(
    {"ratelimited", "rate_limited", "service_unavailable", "fatal_error", "internal_error"}
)


class SlackAlertChannel:
    """Posts seller alerts to the Slack channel named by each row's recipient."""

    name = ALERT_CHANNEL

    def __init__(self, settings: SlackBotSettings, *, timeout: int = 30) -> None:
        self._settings = settings
        self._timeout = timeout
        self._client: AsyncWebClient | None = None

    def __repr__(self) -> str:
        return f"<SlackAlertChannel {self.name!r} api={self._settings.api_base_url!r}>"

    async def send(self, message: Message) -> None:
        """Post ``message`` to ``message.recipient`` (a channel id) or raise ``ChannelError``."""
        from slack_sdk.errors import SlackApiError, SlackClientError
        from trackops.bots.blocks import alert_blocks

        channel = valid_channel_id(message.recipient)
        if channel is None:
            raise ChannelError("not a Slack channel id (expected e.g. C012AB3CD)", retryable=False)
        text, blocks = alert_blocks(message)
        if self._client is None:
            self._client = make_web_client(self._settings, timeout=self._timeout)
        try:
            await self._client.chat_postMessage(
                channel=channel, text=text, blocks=blocks, unfurl_links=False
            )
        except SlackApiError as exc:
            response = exc.response
            status = getattr(response, "status_code", 0)
            try:
                error = str(response.get("error") or "")
            except Exception:  # a body that is not JSON
                error = ""
            error = error or f"HTTP {status}"
            retryable = error in _RETRYABLE or status == 429 or status >= 500
            raise ChannelError(
                self._scrub(f"Slack refused: {error}"), retryable=retryable
            ) from None
        except (SlackClientError, OSError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise ChannelError(self._scrub(f"Slack unreachable: {detail}")) from None
        except Exception as exc:  # aiohttp's errors and anything else the transport raises
            detail = str(exc) or type(exc).__name__
            raise ChannelError(self._scrub(f"Slack unreachable: {detail}")) from None

    def _scrub(self, text: str) -> str:
        for secret in (self._settings.bot_token.reveal(), self._settings.app_token.reveal()):
            if secret:
                text = text.replace(secret, "********")
        return text[:500]

    async def aclose(self) -> None:
        """Close the Web API client's session (slack_sdk opens one per call: nothing held)."""
        self._client = None
