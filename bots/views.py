"""The modal that asks ``/track add`` for a carrier's extra parameter: its submission.

A parameter that does not fit the carrier is refused inside the modal (Slack's
``response_action: errors``), within the 3 seconds. A valid one closes the modal; the register
goes on after the acknowledgement and its result arrives as an ephemeral message
(``chat.postEphemeral``) in the channel where ``/track add`` was typed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from trackops.bots.app import SlackBot, valid_channel_id, valid_user_id
from trackops.bots.blocks import PARAM_BLOCK, PARAM_INPUT, PARAM_VIEW, AddDraft, plain
from trackops.bots.commands import run_register
from trackops.core.service import TrackopsError

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

__all__ = ["register"]

log = logging.getLogger("trackops.bots.views")


def register(app: AsyncApp, bot: SlackBot) -> None:
    """Add the modal's submission listener to ``app``."""

    @app.view(PARAM_VIEW)
    async def on_param(
        ack: Callable[..., Awaitable[Any]], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await param_submitted(bot, ack, body, client)


def _errors(message: str) -> dict[str, Any]:
    return {"response_action": "errors", "errors": {PARAM_BLOCK: plain(message, 150)}}


def _typed_value(view: dict[str, Any]) -> str | None:
    state = view.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    block = values.get(PARAM_BLOCK) if isinstance(values, dict) else None
    field = block.get(PARAM_INPUT) if isinstance(block, dict) else None
    value = field.get("value") if isinstance(field, dict) else None
    return value if isinstance(value, str) else None


async def param_submitted(
    bot: SlackBot,
    ack: Callable[..., Awaitable[Any]],
    body: dict[str, Any],
    client: AsyncWebClient,
) -> None:
    """Check the parameter, close the modal, register, tell the user."""
    user_part = body.get("user")
    user = valid_user_id(user_part.get("id")) if isinstance(user_part, dict) else None
    view = body.get("view")
    if user is None or not isinstance(view, dict):
        await ack(**_errors("This form names no valid user; close it and run /track add again."))
        return
    try:
        draft = AddDraft.from_metadata(view.get("private_metadata"))
    except ValueError:
        await bot.record(user, "register", "", "failed", "modal metadata unreadable")
        await ack(**_errors("This form is damaged; close it and run /track add again."))
        return
    channel = valid_channel_id(draft.channel_id)
    value = (_typed_value(view) or "").strip()
    if not value:
        await bot.record(user, "register", draft.number, "failed", "form sent without a value")
        await ack(**_errors("This carrier needs this value; type it, or cancel."))
        return
    try:
        param = bot.service.validate_param(draft.carrier, value)
    except TrackopsError as exc:
        await bot.record(user, "register", draft.number, "failed", str(exc))
        await ack(**_errors(str(exc)))
        return
    await ack()
    reply = await run_register(bot, user, draft.number, draft.carrier, param, draft.tag)
    if channel is None:
        log.warning("register from the modal done, but its channel id is not valid")
        return
    try:
        await client.chat_postEphemeral(
            channel=channel,
            user=user,
            text=reply.text,
            blocks=list(reply.blocks) if reply.blocks is not None else None,
        )
    except Exception as exc:
        response = getattr(exc, "response", None)
        error = response.get("error") if response is not None else type(exc).__name__
        log.error("chat.postEphemeral of a register result failed: %s", error)
