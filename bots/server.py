"""Transports: the bolt app on our aiohttp listener (HTTP mode) and Socket Mode.

HTTP mode: ``POST /slack/events`` on the webhook's server takes slash commands and
interactions (buttons, modal submissions). bolt checks the signature and the timestamp
(older than 5 minutes is refused) before anything else runs, answering 401. A body that is
not a Slack request at all is answered 400 with one line, never a traceback.

Socket Mode (``[slack] app_token``): slack_sdk's aiohttp Socket Mode client asks
``apps.connections.open`` at ``api_base_url`` for a WebSocket URL, receives the same payloads
over it and acknowledges each envelope. It runs inside the listener's lifetime (a
``cleanup_ctx``); a connection that fails is retried in the background (an invalid token is
logged once and not retried), so pushes from 17TRACK keep flowing either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from trackops.bots.app import create_slack_app
from trackops.core.config import Settings, SlackBotSettings

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
    from trackops.core.service import Service

__all__ = ["SLACK_APP", "SLACK_EVENTS_PATH", "SLACK_SETTINGS", "mount", "socket_mode_ctx"]

log = logging.getLogger("trackops.bots")

SLACK_EVENTS_PATH: Final = "/slack/events"
SLACK_APP: Final = web.AppKey("trackops_slack_app", AsyncApp)
SLACK_SETTINGS: Final = web.AppKey("trackops_slack_settings", SlackBotSettings)
_RETRY_SECONDS: Final = (1.0, 5.0, 15.0, 60.0)
_REFUSED: Final = frozenset(
    {"invalid_auth", "not_authed", "not_allowed_token_type", "account_inactive", "token_revoked"}
)


def mount(app: web.Application, service: Service, settings: Settings) -> AsyncApp | None:
    """Add the Slack bot to the listener ``app`` as ``[slack]`` asks; returns the bolt app.

    Nothing happens without a bot token. HTTP mode needs the signing secret as well; Socket
    Mode needs the app token.
    """
    slack = settings.slack
    if not slack.bot_token:
        if slack.signing_secret or slack.app_token:
            log.warning("[slack] bot_token is not set: the Slack bot is off")
        return None
    if not slack.signing_secret and not slack.app_token:
        log.warning("[slack] needs signing_secret (HTTP mode) or app_token (Socket Mode)")
        return None
    bolt = create_slack_app(service, settings)
    app[SLACK_APP] = bolt
    app[SLACK_SETTINGS] = slack
    if slack.signing_secret:
        app.router.add_post(SLACK_EVENTS_PATH, handle_slack)
    if slack.app_token:
        app.cleanup_ctx.append(socket_mode_ctx)
    return bolt


async def handle_slack(request: web.Request) -> web.Response:
    """``POST /slack/events``: hand the request to bolt (which verifies it first)."""
    bolt = request.app[SLACK_APP]
    try:
        bolt_request = await to_bolt_request(request)
    except UnicodeDecodeError:
        return web.Response(status=400, text="not a Slack request: the body is not UTF-8 text")
    except ValueError:
        return web.Response(status=400, text="not a Slack request: its payload is not JSON")
    try:
        bolt_response = await bolt.async_dispatch(bolt_request)
    except Exception as exc:
        log.error("Slack request failed before a listener ran: %s", type(exc).__name__)
        return web.Response(status=400, text="not a Slack request this app can read")
    return await to_aiohttp_response(bolt_response)


def _handler(app: web.Application) -> AsyncSocketModeHandler:
    from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

    bolt = app[SLACK_APP]
    token = app[SLACK_SETTINGS].app_token.reveal()
    return AsyncSocketModeHandler(bolt, app_token=token, web_client=bolt.client)


async def socket_mode_ctx(app: web.Application) -> AsyncIterator[None]:
    """Connect Socket Mode for the listener's lifetime (retrying in the background)."""
    handler = _handler(app)
    task = asyncio.create_task(_connect(handler), name="trackops-slack-socket-mode")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await handler.close_async()


async def _connect(handler: AsyncSocketModeHandler) -> None:
    """Ask for a WebSocket URL ourselves first: slack_sdk's client would retry a refused app
    token forever, logging a traceback each time. A refused token is logged once; Slack
    being unreachable is retried with a growing delay. Once connected, the client itself
    reconnects when the connection drops."""
    from slack_sdk.errors import SlackApiError

    attempt = 0
    while True:
        try:
            url = await handler.client.issue_new_wss_url()
            handler.client.wss_uri = url
            await handler.connect_async()
            log.warning("Slack Socket Mode connected")
            return
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            if error in _REFUSED:
                log.error("Slack Socket Mode: Slack refused [slack] app_token (%s)", error)
                return
            reason = str(error or "Slack API error")
        except Exception as exc:
            reason = type(exc).__name__
        delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
        log.warning("Slack Socket Mode: cannot connect (%s); again in %.0f s", reason, delay)
        attempt += 1
        await asyncio.sleep(delay)
