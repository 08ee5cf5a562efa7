"""``/track``: the slash command and the work behind each subcommand.

The ``run_*`` functions do one subcommand's work over the service and return a ``Reply``; the
buttons (``actions``) and the modal (``views``) call the same functions, so a command and the
button standing for it do the same thing and check the same rights.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from trackops.bots.app import ALERT_CHANNEL, Reply, SlackBot, valid_channel_id, valid_user_id
from trackops.bots.blocks import (
    AddDraft,
    escape,
    help_blocks,
    history_blocks,
    list_blocks,
    param_modal,
    plain,
    status_blocks,
    text_blocks,
)
from trackops.bots.parse import (
    ADMIN_ACTIONS,
    AUDIT_ACTIONS,
    Command,
    CommandError,
    parse_command,
    parse_statuses,
    usage,
)
from trackops.core.service import (
    CommandOutcome,
    HistoryQuery,
    RegisterRequest,
    ShipmentQuery,
    TrackopsError,
)
from trackops.core.wire import PackageStatus

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.context.respond.async_respond import AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

__all__ = [
    "LIST_PAGE",
    "refusal",
    "register",
    "run_command",
    "run_history",
    "run_list",
    "run_register",
    "run_tracking",
]

log = logging.getLogger("trackops.bots.commands")

LIST_PAGE: Final = 10
HISTORY_ROWS: Final = 15
COMMAND: Final = "/track"

_VERB_WORDS: Final = {
    "stop": "stop tracking parcels",
    "delete": "delete parcels",
    "carrier": "change carriers",
}


def register(app: AsyncApp, bot: SlackBot) -> None:
    """Add the ``/track`` slash command to ``app``."""

    @app.command(COMMAND)
    async def track(
        ack: Callable[..., Awaitable[Any]],
        body: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        await handle_track(bot, ack, body, respond, client)


async def handle_track(
    bot: SlackBot,
    ack: Callable[..., Awaitable[Any]],
    body: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
) -> None:
    """One ``/track`` request: parse, check rights, then answer within Slack's 3 seconds."""
    user = valid_user_id(body.get("user_id"))
    if user is None:
        await ack(
            text="This request names no valid Slack user; nothing was done.",
            response_type="ephemeral",
        )
        return
    try:
        command = parse_command(body.get("text"))
    except CommandError as exc:
        await bot.record(user, "command", "", "failed", str(exc))
        await ack(
            text=f"{escape(str(exc), 1000)}. Type `/track help` for the commands.",
            response_type="ephemeral",
        )
        return
    channel = valid_channel_id(body.get("channel_id"))
    plugin = bot.plugin_commands.get((command.unknown or "").lower())
    if plugin is not None:
        from trackops.bots.extensions import handle_typed

        await handle_typed(bot, ack, respond, user, channel, plugin, command.args)
        return
    if command.verb in ADMIN_ACTIONS and not bot.is_admin(user):
        target = command.args[0] if command.args else ""
        action = AUDIT_ACTIONS.get(command.verb, command.verb)
        await bot.record(user, action, target, "denied", "not in [slack] admins")
        await ack(**refusal(command.verb).ack_kwargs())
        return
    if command.verb == "add":
        await _add(bot, ack, respond, client, user, channel, command, body.get("trigger_id"))
        return
    pending = {
        "stop": "Stopping",
        "retrack": "Retracking",
        "delete": "Deleting",
        "carrier": "Changing the carrier of",
    }
    if command.verb in pending:
        work = f"{pending[command.verb]} {escape(command.args[0], 50)}… I will answer here."
    else:
        work = "Working on it… I will answer here."
    await bot.answer(ack, respond, run_command(bot, user, channel, command), pending=work)


def refusal(verb: str) -> Reply:
    """The ephemeral answer to someone outside ``[slack] admins``."""
    what = _VERB_WORDS.get(verb, verb)
    return Reply(
        f"Sorry, only trackops admins may {what}. Nothing was changed;"
        " ask an admin, or ask to be added to [slack] admins."
    )


async def run_command(bot: SlackBot, user: str, channel: str | None, command: Command) -> Reply:
    """The reply to one parsed ``/track`` command (every failure is a readable reply)."""
    args = command.args
    try:
        match command.verb:
            case "status":
                return await run_status(bot, user, args[0])
            case "list":
                status = PackageStatus.parse(args[0]) if args else None
                return await run_list(bot, user, status, after=None, shown_before=0)
            case "stop" | "retrack" | "delete":
                return await run_tracking(bot, user, command.verb, args[0])
            case "carrier":
                return await run_change_carrier(bot, user, args[0], args[1])
            case "history":
                return await run_history(bot, user, args[0])
            case "subscribe":
                return await run_subscribe(bot, user, channel, args)
            case "unsubscribe":
                return await run_unsubscribe(bot, user, channel)
            case _:
                await bot.record(user, "help", command.unknown or "", "ok")
                text = "Commands of /track" if command.unknown is None else "Unknown command"
                return Reply(text, blocks=help_blocks(command.unknown, _plugin_help(bot)))
    except TrackopsError as exc:
        # The service records its own commands; queries and refusals before it are ours.
        if command.verb in {"status", "list", "history"}:
            await bot.record(user, command.verb, args[0] if args else "", "failed", str(exc))
        return Reply(escape(str(exc), 2000))
    except (CommandError, ValueError) as exc:
        await bot.record(user, command.verb, args[0] if args else "", "failed", str(exc))
        return Reply(f"{escape(str(exc), 1000)}. Usage: `{usage(command.verb)}`")


async def run_status(bot: SlackBot, user: str, text: str) -> Reply:
    """``/track status NUMBER|ORDER``."""
    detail = await bot.service.find_shipment(text)
    await bot.record(user, "status", detail.shipment.number, "ok")
    row = detail.shipment
    return Reply(f"{row.number}: {row.status.display}", blocks=status_blocks(detail))


async def run_list(
    bot: SlackBot,
    user: str,
    status: PackageStatus | None,
    *,
    after: str | None,
    shown_before: int,
) -> Reply:
    """``/track list [STATUS]`` and its "More" button (``after`` is the page cursor)."""
    query = ShipmentQuery(statuses=frozenset({int(status)}) if status is not None else frozenset())
    page = await bot.service.shipments(query, limit=LIST_PAGE, after=after)
    total = await bot.service.count_shipments(query)
    await bot.record(user, "list", status.slug if status is not None else "", "ok")
    blocks = list_blocks(
        page.items,
        total=total,
        status=status,
        next_cursor=page.next_cursor,
        shown_before=shown_before,
    )
    noun = "shipment" if total == 1 else "shipments"
    return Reply(f"{total} {noun}", blocks=blocks, replace_original=after is not None or None)


async def run_history(bot: SlackBot, user: str, text: str) -> Reply:
    """``/track history NUMBER|ORDER|EMAIL`` and the History button."""
    page = await bot.service.history(HistoryQuery(search=text), limit=HISTORY_ROWS)
    await bot.record(user, "history", text, "ok")
    blocks = history_blocks(page.items, search=text, more=page.next_cursor is not None)
    return Reply(f"{len(page.items)} notifications for {escape(text, 100)}", blocks=blocks)


async def run_tracking(bot: SlackBot, user: str, verb: str, number: str) -> Reply:
    """stop / retrack / delete one number (the caller has checked the rights)."""
    actor = bot.actor(user)
    service = bot.service
    if verb == "stop":
        outcome = await service.stop([number], actor=actor)
        done = "stopped tracking"
    elif verb == "retrack":
        outcome = await service.retrack([number], actor=actor)
        done = "is tracked again"
    elif verb == "delete":
        outcome = await service.delete([number], actor=actor)
        done = "deleted"
    else:  # a programming error must never fall through to a destructive command
        raise ValueError(f"not a tracking command: {verb!r}")
    return outcome_reply(outcome, done)


async def run_change_carrier(bot: SlackBot, user: str, number: str, carrier_text: str) -> Reply:
    """``/track carrier NUMBER CARRIER`` (admins)."""
    try:
        carrier = bot.service.resolve_carrier(carrier_text)
    except TrackopsError as exc:
        await bot.record(user, "change-carrier", number, "failed", str(exc))
        raise
    outcome = await bot.service.change_carrier(number, carrier, actor=bot.actor(user))
    return outcome_reply(outcome, "now has carrier " + _carrier_label(bot, carrier))


async def run_register(
    bot: SlackBot,
    user: str,
    number: str,
    carrier: int | None,
    param: str | None,
    tag: str | None,
) -> Reply:
    """Register one number (``/track add`` and the extra-parameter modal)."""
    request = RegisterRequest(number=number, carrier=carrier, param=param, tag=tag)
    try:
        outcome = await bot.service.register([request], actor=bot.actor(user))
    except TrackopsError as exc:
        return Reply(escape(str(exc), 2000))
    return outcome_reply(outcome, "registered")


async def run_subscribe(
    bot: SlackBot, user: str, channel: str | None, args: tuple[str, ...]
) -> Reply:
    """``/track subscribe [STATUS ...]``: this channel gets seller alerts for those statuses."""
    if channel is None:
        return Reply("Subscribe from a channel: this request names no channel.")
    statuses = parse_statuses(args)
    await bot.service.subscribe_alerts(ALERT_CHANNEL, channel, statuses, actor=bot.actor(user))
    names = ", ".join(s.display for s in statuses)
    return Reply(f"This channel now gets trackops alerts for: {names}.")


async def run_unsubscribe(bot: SlackBot, user: str, channel: str | None) -> Reply:
    """``/track unsubscribe``: this channel stops getting alerts."""
    if channel is None:
        return Reply("Unsubscribe from a channel: this request names no channel.")
    removed = await bot.service.unsubscribe_alerts(ALERT_CHANNEL, channel, actor=bot.actor(user))
    if removed:
        return Reply("This channel no longer gets trackops alerts.")
    return Reply("This channel was not subscribed to trackops alerts.")


def outcome_reply(outcome: CommandOutcome, done: str) -> Reply:
    """A command's per-number outcome as one message."""
    lines = [f"*{escape(n, 60)}* {done}." for n in outcome.accepted]
    for number in outcome.accepted:
        note = outcome.notes.get(number)
        if note:
            lines.append(f"_{escape(note, 300)}_")
    for rejected in outcome.rejected:
        message = rejected.error.message or "refused"
        lines.append(
            f"*{escape(rejected.number or '?', 60)}*: {escape(message, 500)}"
            f" (code {rejected.error.code})"
        )
    text = "\n".join(lines) or "Nothing was done."
    fallback = plain(text.replace("*", "").replace("_", ""), 300)
    return Reply(fallback, blocks=text_blocks(text))


def _plugin_help(bot: SlackBot) -> list[str]:
    from trackops.bots.extensions import help_lines

    return help_lines(bot.plugin_commands)


def _carrier_label(bot: SlackBot, code: int) -> str:
    for choice in bot.service.carriers(str(code), limit=5):
        if choice.code == code:
            return f"{choice.name} ({code})"
    return str(code)


def _optional(word: str | None) -> str | None:
    """``-`` (or nothing) skips a positional argument of ``/track add``."""
    if word is None or word.strip() in {"", "-"}:
        return None
    return word.strip()


async def _add(
    bot: SlackBot,
    ack: Callable[..., Awaitable[Any]],
    respond: AsyncRespond,
    client: AsyncWebClient,
    user: str,
    channel: str | None,
    command: Command,
    trigger_id: object,
) -> None:
    """``/track add NUMBER [CARRIER] [PARAM] [TAG]``; a modal asks for a missing parameter."""
    args = [*command.args, None, None, None]
    number = plain(args[0] or "", 50)
    shown = escape(number, 60)
    carrier_text, param, tag = _optional(args[1]), _optional(args[2]), _optional(args[3])
    carrier: int | None = None
    try:
        if carrier_text is not None:
            carrier = bot.service.resolve_carrier(carrier_text)
        hint = bot.service.param_hint(carrier) if carrier is not None else None
    except TrackopsError as exc:
        await bot.record(user, "register", number, "failed", str(exc))
        await ack(text=escape(str(exc), 2000), response_type="ephemeral")
        return
    if carrier is not None and hint is not None and hint.required and param is None:
        if isinstance(trigger_id, str) and trigger_id and channel is not None:
            await ack()
            draft = AddDraft(number=number, carrier=carrier, tag=tag, channel_id=channel)
            name = _carrier_label(bot, carrier)
            view = param_modal(draft, carrier_name=name, kind=hint.kind, hint=hint.hint)
            try:
                await client.views_open(trigger_id=trigger_id, view=view)
                # The register itself is recorded when the form is sent (or never, if closed).
                await bot.record(user, "register", number, "ok", f"asked for the {hint.kind}")
            except Exception as exc:
                error = _slack_error(exc)
                log.error("views.open failed: %s", error)
                await bot.record(user, "register", number, "failed", f"views.open: {error}")
                await bot.respond(
                    respond,
                    Reply(
                        f"{shown} needs a {hint.kind} for this carrier ({hint.hint}); give it"
                        f" as `{usage('add')}`."
                    ),
                )
            return
        await bot.record(user, "register", number, "failed", f"needs a {hint.kind}")
        await ack(
            text=f"{shown} needs a {hint.kind} for this carrier: {hint.hint}."
            f" Usage: `{usage('add')}`",
            response_type="ephemeral",
        )
        return
    await bot.answer(
        ack,
        respond,
        run_register(bot, user, number, carrier, param, tag),
        pending=f"Registering {shown} with 17TRACK… I will answer here.",
    )


def _slack_error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    try:
        error = response.get("error") if response is not None else None
    except Exception:
        error = None
    return str(error or type(exc).__name__)
