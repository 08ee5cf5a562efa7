"""The bolt app: ``create_slack_app(service, settings)`` and what its listeners share.

Theory of operation
-------------------
* One ``AsyncApp`` per server, over the one ``Service`` (never the store or the engine). Its
  ``AsyncWebClient`` talks to ``[slack] api_base_url`` (tests and air-gapped installs point it
  elsewhere) and honours Slack's 429 answers with slack_sdk's rate-limit retry handler.
* Listener groups live in their own modules, each with one ``register(app, bot)``:
  ``commands`` (``/track``), ``actions`` (buttons), ``views`` (the modal's submission).
* Slack wants an acknowledgement within 3 seconds. ``SlackBot.answer`` runs the work and, when
  it is done within ``ack_budget`` seconds, puts the answer in the acknowledgement itself;
  otherwise it acknowledges with a "working on it" line and the answer follows through
  ``respond`` (the request's ``response_url``) when the work ends (a register waiting for
  17TRACK's rate limit, for instance). bolt (``process_before_response=False``) returns the
  HTTP answer as soon as ``ack`` is called and lets the listener go on.
* Every command and button is recorded through the service with actor ``slack:<user id>``:
  the service's commands record themselves; queries, help and refusals are recorded with
  ``Service.record``, which holds an answer back for at most ``RECORD_WAIT`` (a store busy
  with another writer finishes the row later, after the acknowledgement). Only
  ``[slack] admins`` may stop, delete or change a carrier, by command or by button; a refusal
  is an ephemeral message and nothing reaches 17TRACK.
* Payloads are hostile: user ids, channel ids, button values and modal metadata are checked
  before use, and any failure becomes one readable line for the user, never a traceback.
  ``respond`` only posts to Slack's own hooks host or to ``api_base_url``'s host.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from trackops.core.config import Settings, SlackBotSettings

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.context.respond.async_respond import AsyncRespond
    from slack_sdk.models.blocks import Block
    from slack_sdk.web.async_client import AsyncWebClient
    from trackops.core.hookspecs import SlackCommand
    from trackops.core.plugins import Provided
    from trackops.core.service import Service

__all__ = [
    "ALERT_CHANNEL",
    "Reply",
    "SlackBot",
    "create_slack_app",
    "make_web_client",
]

log = logging.getLogger("trackops.bots")

ALERT_CHANNEL: Final = "slack_bot"
"""Name of the notifier channel that posts live alerts to subscribed Slack channels."""

ACK_BUDGET: Final = 1.0
"""Seconds of work answered inside the acknowledgement (Slack allows 3 in all)."""

RECORD_WAIT: Final = 1.0
"""Seconds an audit row may hold back an answer (``SlackBot.record``)."""

_USER_RE: Final = re.compile(r"^[UWB][A-Z0-9]{2,40}$")
_CHANNEL_RE: Final = re.compile(r"^[CGD][A-Z0-9]{2,40}$")
_SLACK_HOOKS: Final = ("hooks.slack.com", "hooks.slack-gov.com")


def valid_user_id(value: object) -> str | None:
    """``value`` when it looks like a Slack user id (``U012ABC``), else None."""
    return value if isinstance(value, str) and _USER_RE.fullmatch(value) else None


def valid_channel_id(value: object) -> str | None:
    """``value`` when it looks like a Slack channel id (``C012ABC``), else None."""
    return value if isinstance(value, str) and _CHANNEL_RE.fullmatch(value) else None


@dataclass(frozen=True)
class Reply:
    """An answer to a command or a button: text (the fallback) and optional blocks."""

    text: str
    blocks: Sequence[Block] | None = None
    replace_original: bool | None = None

    def ack_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``ack`` (answers are ephemeral: only the caller sees them)."""
        kwargs: dict[str, Any] = {"text": self.text, "response_type": "ephemeral"}
        if self.blocks is not None:
            kwargs["blocks"] = list(self.blocks)
        return kwargs


@dataclass
class SlackBot:
    """What the listeners share: the service, the ``[slack]`` settings and the rules of access."""

    service: Service
    settings: SlackBotSettings
    ack_budget: float = ACK_BUDGET
    plugin_commands: dict[str, Provided[SlackCommand]] = field(default_factory=dict)
    """The plugins' ``/track`` subcommands by name (``extensions.plugin_commands``)."""
    record_wait: float = RECORD_WAIT

    @property
    def admins(self) -> frozenset[str]:
        """User ids allowed to stop, delete and change carriers."""
        return frozenset(self.settings.admins)

    def is_admin(self, user_id: str) -> bool:
        """True when ``user_id`` is in ``[slack] admins``."""
        return user_id in self.admins

    @staticmethod
    def actor(user_id: str) -> str:
        """The audit actor for ``user_id``: ``slack:U012ABC``."""
        return f"slack:{user_id}"

    async def record(
        self, user_id: str, action: str, target: str, outcome: str, detail: str = ""
    ) -> None:
        """Record an action the service's commands do not record themselves (never raises).

        Waits at most ``record_wait`` seconds: a store busy with another writer must not hold
        back an acknowledgement Slack wants within 3 seconds (the service writes the row when
        the store is free, and before it closes)."""
        await self.service.record_within(
            self.record_wait, self.actor(user_id), action, target[:200], outcome, detail[:500]
        )

    def response_url_allowed(self, url: object) -> bool:
        """True for Slack's own hooks host, or the host of ``api_base_url`` (stand-ins)."""
        if not isinstance(url, str) or len(url) > 2000:
            return False
        try:
            parts = urlsplit(url)
            api = urlsplit(self.settings.api_base_url)
        except ValueError:
            return False
        if parts.scheme == "https" and parts.hostname in _SLACK_HOOKS:
            return True
        return (parts.scheme, parts.netloc) == (api.scheme, api.netloc) and bool(parts.netloc)

    async def respond(self, respond: AsyncRespond, reply: Reply) -> None:
        """Post ``reply`` to the request's response_url (a refused or failed post is logged)."""
        if not self.response_url_allowed(respond.response_url):
            log.warning("not answering through a response_url outside Slack's hosts")
            return
        kwargs: dict[str, Any] = {"text": reply.text, "response_type": "ephemeral"}
        if reply.blocks is not None:
            kwargs["blocks"] = list(reply.blocks)
        if reply.replace_original is not None:
            kwargs["replace_original"] = reply.replace_original
        try:
            await respond(**kwargs)
        except Exception as exc:
            log.error("Slack answer through response_url failed: %s", type(exc).__name__)

    async def answer(
        self,
        ack: Callable[..., Awaitable[Any]],
        respond: AsyncRespond,
        work: Awaitable[Reply],
        *,
        pending: str,
    ) -> None:
        """Acknowledge with ``work``'s reply when it is ready within ``ack_budget``; else with
        ``pending``, answering through ``respond`` when the work ends."""
        task: asyncio.Future[Reply] = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=self.ack_budget)
        if task in done:
            await ack(**_safe(task).ack_kwargs())
            return
        await ack(text=pending, response_type="ephemeral")
        try:
            reply = await task
        except Exception as exc:  # _safe turns failures into replies; this is belt and braces
            reply = Reply(f"Something went wrong: {type(exc).__name__}")
        await self.respond(respond, reply)


def _safe(task: asyncio.Future[Reply]) -> Reply:
    try:
        return task.result()
    except Exception as exc:
        log.error("Slack command failed: %s", type(exc).__name__)
        return Reply(f"Something went wrong ({type(exc).__name__}); the server log has details.")


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def make_web_client(slack: SlackBotSettings, *, timeout: int = 30) -> AsyncWebClient:
    """An ``AsyncWebClient`` for ``[slack] api_base_url`` with the bot token, honouring 429s."""
    from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
    from slack_sdk.web.async_client import AsyncWebClient

    base_url = slack.api_base_url if slack.api_base_url.endswith("/") else slack.api_base_url + "/"
    return AsyncWebClient(
        token=slack.bot_token.reveal() or None,
        base_url=base_url,
        timeout=timeout,
        logger=logging.getLogger("trackops.bots.web"),
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )


def create_slack_app(
    service: Service,
    settings: Settings,
    *,
    ack_budget: float = ACK_BUDGET,
) -> AsyncApp:
    """The ``/track`` bot over ``service``: ``[slack]`` settings, every listener registered.

    Request signatures are verified when ``[slack] signing_secret`` is set (HTTP mode needs
    it; Socket Mode requests are not signed and bolt skips the check for them).
    """
    from slack_bolt.async_app import AsyncApp
    from trackops.bots import actions, commands, extensions, views

    slack = settings.slack
    secret = slack.signing_secret.reveal()
    bolt_log = logging.getLogger("trackops.bots.bolt")
    # bolt also reads SLACK_BOT_TOKEN from the environment and, with a client given, warns
    # that it ignores it: our own settings are the only source, so that warning is noise.
    quiet = _DropMessage("`token` will be unused")
    bolt_log.addFilter(quiet)
    try:
        app = AsyncApp(
            name="trackops",
            logger=bolt_log,
            signing_secret=secret,  # "" rather than None: never SLACK_SIGNING_SECRET
            request_verification_enabled=bool(secret),
            client=make_web_client(slack),  # carries the bot token
            process_before_response=False,
        )
    finally:
        bolt_log.removeFilter(quiet)
    bot = SlackBot(service=service, settings=slack, ack_budget=ack_budget)
    bot.plugin_commands = extensions.plugin_commands(service)
    commands.register(app, bot)
    extensions.register(app, bot)
    actions.register(app, bot)
    views.register(app, bot)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        # One line, no traceback and no payload (it is user text): what failed, where.
        log.error("Slack listener failed: %s", type(error).__name__)

    return app
