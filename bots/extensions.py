"""``/track`` subcommands and buttons that plugins add (``trackops_register_slack_commands``).

A plugin's subcommand goes through the same gates as the bot's own:

* its access level (``anyone`` or ``admins``) is checked first; a refusal is recorded
  (``denied``) and answered ephemerally, and the plugin's code never runs;
* it runs inside ``SlackBot.answer``, so Slack gets its acknowledgement within the budget
  whatever the plugin does (a slow answer follows through the response URL);
* every run is recorded through the service with the actor ``slack:<user>`` and the
  subcommand's name as the action (``ok`` or ``failed``);
* whatever it raises becomes one line naming the plugin, never a traceback; one that has not
  answered within ``PLUGIN_TIMEOUT`` seconds is cut off and answered so (Slack's response URL
  takes answers for 30 minutes; without a bound the person would wait for ever);
* its text is data: escaped for mrkdwn (it cannot ping ``<!channel>`` or forge a link).

A plugin's button (``SlackButton``) names one of the plugins' subcommands and its words; a
press runs that subcommand through the same gates, as if typed.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from trackops.bots.app import Reply, SlackBot, valid_channel_id, valid_user_id
from trackops.bots.blocks import escape, plain
from trackops.bots.parse import usage

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.context.respond.async_respond import AsyncRespond
    from trackops.core.hookspecs import SlackCommand
    from trackops.core.plugins import Provided
    from trackops.core.service import Service

__all__ = [
    "ACTION_PREFIX",
    "PLUGIN_TIMEOUT",
    "PluginSlackContext",
    "help_lines",
    "plugin_commands",
    "register",
    "run_plugin_command",
]

log = logging.getLogger("trackops.bots.plugins")

ACTION_PREFIX: Final = "track_plugin:"
"""``action_id`` prefix of plugin buttons (the rest tells buttons of one answer apart)."""

_MAX_WORD: Final = 100
_MAX_BUTTONS: Final = 5
PLUGIN_TIMEOUT: float = 600.0
"""Seconds a plugin's ``/track`` subcommand may take before it is cut off (read at each run)."""


def _own_verbs() -> frozenset[str]:
    from trackops.bots import parse

    return frozenset(parse._USAGE)


def plugin_commands(service: Service) -> dict[str, Provided[SlackCommand]]:
    """The plugins' ``/track`` subcommands by name; one named like the bot's own is refused
    (logged and kept with the plugin's errors)."""
    own = _own_verbs()
    found: dict[str, Provided[SlackCommand]] = {}
    for provided in service.extensions().slack_commands:
        name = provided.item.name
        if name in own:
            service.refuse_extension(
                provided.plugin,
                f"/track subcommand {name!r} is one of the bot's own commands; refused",
            )
            continue
        found[name] = provided
    return found


def help_lines(commands: dict[str, Provided[SlackCommand]]) -> list[str]:
    """``/track help``'s lines for the plugins' subcommands, with the plugin of each."""
    lines = []
    for name, provided in commands.items():
        command = provided.item
        shown = f"/track {name} {command.usage}".strip()
        admins = ", admins" if command.access == "admins" else ""
        lines.append(
            f"`{escape(shown, 120)}`: {escape(command.help, 200)}"
            f" (plugin {escape(provided.plugin, 60)}{admins})"
        )
    return lines


@dataclass
class PluginSlackContext:
    """``hookspecs.SlackContext``: what a plugin's subcommand gets."""

    service: Service
    args: tuple[str, ...]
    user_id: str
    actor: str
    channel_id: str | None
    is_admin: bool


def _refusal(name: str) -> Reply:
    return Reply(
        f"Sorry, only trackops admins may run /track {escape(name, 40)}. Nothing was done;"
        " ask an admin, or ask to be added to [slack] admins."
    )


async def run_plugin_command(
    bot: SlackBot,
    user: str,
    channel: str | None,
    provided: Provided[SlackCommand],
    args: Sequence[str],
) -> Reply:
    """Run one plugin subcommand for ``user`` (rights checked here); never raises."""
    from trackops.core.service import TrackopsError

    command = provided.item
    target = " ".join(args)[:200]
    where = f"plugin {provided.plugin}"
    if command.access == "admins" and not bot.is_admin(user):
        await bot.record(user, command.name, target, "denied", f"{where}: not in [slack] admins")
        return _refusal(command.name)
    for word in args:
        if len(word) > _MAX_WORD:
            await bot.record(user, command.name, target[:60], "failed", f"{where}: word too long")
            return Reply(f"Each word may be at most {_MAX_WORD} characters long.")
    context = PluginSlackContext(
        service=bot.service,
        args=tuple(args),
        user_id=user,
        actor=bot.actor(user),
        channel_id=channel,
        is_admin=bot.is_admin(user),
    )
    try:
        result: object = command.run(context)
        if inspect.isawaitable(result):
            result = await _bounded(result)
        reply = _reply(bot, result)
    except _CutOff as exc:
        log.error("plugin %s: /track %s cut off: %s", provided.plugin, command.name, exc)
        await bot.record(user, command.name, target, "failed", f"{where}: {exc}")
        return Reply(
            f"/track {escape(command.name, 40)} failed in plugin {escape(provided.plugin, 60)}:"
            f" {exc}. Nothing else was affected."
        )
    except TrackopsError as exc:
        await bot.record(user, command.name, target, "failed", f"{where}: {exc}")
        return Reply(escape(str(exc), 2000))
    except Exception as exc:
        log.error(
            "plugin %s: /track %s failed: %s", provided.plugin, command.name, type(exc).__name__
        )
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        await bot.record(user, command.name, target, "failed", f"{where}: {detail}")
        return Reply(
            f"/track {escape(command.name, 40)} failed in plugin {escape(provided.plugin, 60)}:"
            f" {escape(detail, 500)}. Nothing else was affected."
        )
    await bot.record(user, command.name, target, "ok", where)
    return reply


class _CutOff(Exception):
    """A plugin's run that did not end within ``PLUGIN_TIMEOUT``."""


async def _bounded(result: Awaitable[object]) -> object:
    """``await result`` for at most ``PLUGIN_TIMEOUT`` seconds (``_CutOff`` after)."""
    deadline = asyncio.timeout(PLUGIN_TIMEOUT)
    try:
        async with deadline:
            return await result
    except TimeoutError:
        if deadline.expired():
            raise _CutOff(f"no answer within {PLUGIN_TIMEOUT:g} s") from None
        raise  # the plugin's own TimeoutError: its failure, like any other


def _reply(bot: SlackBot, result: object) -> Reply:
    """A plugin's return value as a ``Reply`` (a ``TypeError`` for anything else)."""
    from slack_sdk.models.blocks import (
        ActionsBlock,
        Block,
        ButtonElement,
        MarkdownTextObject,
        SectionBlock,
    )
    from trackops.core.hookspecs import SlackButton, SlackReply

    if isinstance(result, str):
        result = SlackReply(result)
    if not isinstance(result, SlackReply):
        raise TypeError(f"run() returned {type(result).__name__}, not text or a SlackReply")
    text = escape(result.text, 2900) or " "
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=text))]
    buttons: list[ButtonElement] = []
    for i, button in enumerate(result.buttons[:_MAX_BUTTONS]):
        if not isinstance(button, SlackButton):
            raise TypeError(f"button {i + 1} is a {type(button).__name__}, not a SlackButton")
        if button.command not in bot.plugin_commands:
            raise ValueError(f"button {button.label!r} names no plugin /track subcommand")
        value = json.dumps({"c": button.command, "a": list(button.args)}, ensure_ascii=False)
        if len(value) > 2000:
            raise ValueError(f"button {button.label!r} carries more than 2000 characters")
        buttons.append(
            ButtonElement(
                text=plain(button.label, 75) or button.command,
                action_id=f"{ACTION_PREFIX}{i}",
                value=value,
                style=button.style,
            )
        )
    if buttons:
        blocks.append(ActionsBlock(elements=buttons))
    return Reply(plain(result.text.replace("*", ""), 300) or " ", blocks=blocks)


async def handle_typed(
    bot: SlackBot,
    ack: Callable[..., Awaitable[Any]],
    respond: AsyncRespond,
    user: str,
    channel: str | None,
    provided: Provided[SlackCommand],
    args: Sequence[str],
) -> None:
    """``/track NAME ...`` for a plugin's subcommand: answered within Slack's 3 seconds."""
    if provided.item.access == "admins" and not bot.is_admin(user):
        reply = await run_plugin_command(bot, user, channel, provided, args)  # the refusal
        await ack(**reply.ack_kwargs())
        return
    work = run_plugin_command(bot, user, channel, provided, args)
    await bot.answer(ack, respond, work, pending="Working on it… I will answer here.")


_ACTION_RE: Final = re.compile(rf"^{re.escape(ACTION_PREFIX)}\d+$")


def register(app: AsyncApp, bot: SlackBot) -> None:
    """Add the listener of plugin buttons to ``app``."""

    @app.action(_ACTION_RE)
    async def on_plugin_button(
        ack: Callable[..., Awaitable[Any]], body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        reply = await plugin_button(bot, body)
        await bot.respond(respond, Reply(reply.text, reply.blocks, replace_original=False))


async def plugin_button(bot: SlackBot, body: dict[str, Any]) -> Reply:
    """A press on a plugin's button: its subcommand, through the same gates as typing it."""
    user_field = body.get("user")
    user = valid_user_id(user_field.get("id")) if isinstance(user_field, dict) else None
    if user is None:
        return Reply("This button press names no valid Slack user; nothing was done.")
    channel_field = body.get("channel")
    channel = valid_channel_id(channel_field.get("id")) if isinstance(channel_field, dict) else None
    actions = body.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else None
    raw = first.get("value") if isinstance(first, dict) else None
    try:
        if not isinstance(raw, str) or len(raw) > 2000:
            raise ValueError
        data = json.loads(raw)
        name, args = data["c"], data["a"]
        if not isinstance(name, str) or not isinstance(args, list):
            raise TypeError
        if not all(isinstance(a, str) for a in args):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        await bot.record(user, "plugin-button", "", "failed", "malformed button value")
        return Reply("This button is not readable; nothing was done.")
    provided = bot.plugin_commands.get(name)
    if provided is None:
        await bot.record(user, "plugin-button", plain(name, 60), "failed", "no such command")
        return Reply(
            f"/track {escape(name, 40)} is not available any more; nothing was done."
            f" Type `{usage('help')}` for the commands."
        )
    return await run_plugin_command(bot, user, channel, provided, args)
