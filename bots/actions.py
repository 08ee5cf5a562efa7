"""Buttons: Stop, Retrack and History on a shipment, "More" under a list.

A button is acknowledged at once (Slack shows nothing for a button's acknowledgement) and
answers through ``respond``. It checks the same rights as the command it stands for and runs
the same ``commands.run_*`` function. Its ``value`` came back from Slack's client, so it is
checked like typed text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from trackops.bots.app import Reply, SlackBot, valid_user_id
from trackops.bots.blocks import (
    ACTION_HISTORY,
    ACTION_MORE,
    ACTION_RETRACK,
    ACTION_STOP,
    escape,
)
from trackops.bots.commands import refusal, run_history, run_list, run_tracking
from trackops.bots.parse import ADMIN_ACTIONS, AUDIT_ACTIONS
from trackops.core.service import TrackopsError
from trackops.core.wire import PackageStatus

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.context.respond.async_respond import AsyncRespond

__all__ = ["register"]

_NUMBER_RE: Final = re.compile(r"^[A-Za-z0-9]{5,50}$")

_VERBS: Final = {ACTION_STOP: "stop", ACTION_RETRACK: "retrack", ACTION_HISTORY: "history"}


def register(app: AsyncApp, bot: SlackBot) -> None:
    """Add the button listeners to ``app``."""

    for action_id, verb in _VERBS.items():
        # bolt fills a listener's arguments by name, so the verb is bound by a closure,
        # never as an extra (defaulted) argument.
        app.action(action_id)(_shipment_listener(bot, verb))

    @app.action(ACTION_MORE)
    async def on_more(
        ack: Callable[..., Awaitable[Any]], body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        await bot.respond(respond, await more_button(bot, body))


def _shipment_listener(bot: SlackBot, verb: str) -> Callable[..., Awaitable[None]]:
    async def on_button(
        ack: Callable[..., Awaitable[Any]], body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        await bot.respond(respond, await shipment_button(bot, verb, body))

    on_button.__name__ = f"on_{verb}_button"
    return on_button


def _user_and_value(body: dict[str, Any]) -> tuple[str | None, str | None]:
    user = body.get("user")
    user_id = valid_user_id(user.get("id")) if isinstance(user, dict) else None
    actions = body.get("actions")
    value = None
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        raw = actions[0].get("value")
        value = raw if isinstance(raw, str) and len(raw) <= 2000 else None
    return user_id, value


async def shipment_button(bot: SlackBot, verb: str, body: dict[str, Any]) -> Reply:
    """Stop / Retrack / History for the shipment the button names."""
    user, number = _user_and_value(body)
    if user is None:
        return Reply("This button press names no valid Slack user; nothing was done.")
    if number is None or not _NUMBER_RE.fullmatch(number):
        await bot.record(user, verb, "", "failed", "malformed button value")
        return Reply("This button does not name a tracking number; nothing was done.")
    if verb in ADMIN_ACTIONS and not bot.is_admin(user):
        action = AUDIT_ACTIONS.get(verb, verb)
        await bot.record(user, action, number, "denied", "not in [slack] admins")
        return _not_replacing(refusal(verb))
    try:
        if verb == "history":
            reply = await run_history(bot, user, number)
        else:
            reply = await run_tracking(bot, user, verb, number)
    except TrackopsError as exc:
        reply = Reply(escape(str(exc), 2000))
    return _not_replacing(reply)


async def more_button(bot: SlackBot, body: dict[str, Any]) -> Reply:
    """The next page of ``/track list``."""
    user, value = _user_and_value(body)
    if user is None:
        return Reply("This button press names no valid Slack user; nothing was done.")
    try:
        data = json.loads(value or "")
        after, code, shown = data["after"], data["status"], data["n"]
        if not isinstance(after, str) or not isinstance(shown, int) or shown < 0:
            raise ValueError
        status = PackageStatus.parse(code) if code is not None else None
    except (ValueError, KeyError, TypeError):
        await bot.record(user, "list", "", "failed", "malformed More button value")
        return _not_replacing(Reply("This button's page is not readable; run /track list again."))
    try:
        return await run_list(bot, user, status, after=after, shown_before=shown)
    except TrackopsError as exc:
        return _not_replacing(Reply(escape(str(exc), 2000)))


def _not_replacing(reply: Reply) -> Reply:
    return Reply(reply.text, reply.blocks, replace_original=False)
