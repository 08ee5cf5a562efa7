"""Plugins' ``/track`` subcommands and buttons, end to end in HTTP mode: signed requests to the
listener ``trackops serve`` builds, a test plugin loaded beside the installed ones (the bot
itself is the ``slack_bot`` plugin). Access levels, the audit, the 3-second acknowledgement,
the help, and a raising plugin answered as one line, never a crash."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from slack_world import ADMIN, USER, SlackWorld
from trackops.core.errors import InvalidInputError
from trackops.core.hookspecs import SlackButton, SlackCommand, SlackReply, hookimpl
from trackops.core.service import RegisterRequest

NUMBER = "RR123456785CN"


async def _eta(ctx: Any) -> SlackReply:
    if not ctx.args:
        raise InvalidInputError("give a tracking number: /track eta NUMBER")
    detail = await ctx.service.shipment(ctx.args[0])
    return SlackReply(
        f"*{detail.shipment.number}* arrives soon <!channel> asked by {ctx.actor}",
        buttons=(SlackButton("Tag late", "tag-late", (detail.shipment.number,), "danger"),),
    )


async def _tag_late(ctx: Any) -> str:
    outcome = await ctx.service.change_tag(ctx.args[0], "late", actor=ctx.actor)
    return f"tagged {', '.join(outcome.accepted)} late"


async def _slow(ctx: Any) -> str:
    await asyncio.sleep(1.5)
    return "done after a while"


def _broken(ctx: Any) -> str:
    raise RuntimeError("the plugin has a bug")


async def _hangs(ctx: Any) -> str:
    await asyncio.Event().wait()  # never set: a plugin waiting on something that never comes
    return "never"


async def _own_timeout(ctx: Any) -> str:
    raise TimeoutError("the carrier's site did not answer")


class SlackPlugin:
    @hookimpl
    def trackops_register_slack_commands(self, register: Any) -> None:
        register(SlackCommand("eta", "when a parcel arrives", _eta, usage="NUMBER"))
        register(SlackCommand("tag-late", "tag a parcel late", _tag_late, "NUMBER", "admins"))
        register(SlackCommand("slow", "takes its time", _slow))
        register(SlackCommand("explode", "always fails", _broken))
        register(SlackCommand("hang", "never answers", _hangs))
        register(SlackCommand("own-timeout", "times out itself", _own_timeout))
        register(SlackCommand("list", "wants a built-in name", lambda ctx: "never"))


@pytest.fixture
async def plugged(world_factory: Callable[..., Any]) -> AsyncIterator[SlackWorld]:
    async with world_factory(extra_plugins=(("late", SlackPlugin()),)) as world:
        outcome = await world.service.register([RegisterRequest(NUMBER)], actor="test")
        assert outcome.ok
        yield world


def _texts(reply: dict[str, Any]) -> str:
    out: list[str] = [str(reply.get("text", ""))]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in {"plain_text", "mrkdwn"} and "text" in node:
                out.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(reply.get("blocks", []))
    return "\n".join(out)


def _buttons(reply: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e
        for block in reply.get("blocks", [])
        for e in block.get("elements", ())
        if e.get("type") == "button"
    ]


async def test_a_plugin_subcommand_answers_with_its_buttons_and_is_recorded(
    plugged: SlackWorld,
) -> None:
    answer, hook = await plugged.command(f"eta {NUMBER}", user=USER)
    assert answer.status == 200 and answer.seconds < 3
    reply = await plugged.reply(answer, hook)
    assert reply["response_type"] == "ephemeral"
    shown = _texts(reply)
    assert f"*{NUMBER}* arrives soon &lt;!channel&gt; asked by slack:{USER}" in shown
    (button,) = _buttons(reply)
    assert button["text"]["text"] == "Tag late" and button["style"] == "danger"
    assert json.loads(button["value"]) == {"c": "tag-late", "a": [NUMBER]}
    assert ("eta", NUMBER, "ok") in await plugged.audit(USER)

    # A plugin's TrackopsError is its message; the run is recorded as failed.
    answer, hook = await plugged.command("eta", user=USER)
    assert "give a tracking number: /track eta NUMBER" in _texts(await plugged.reply(answer, hook))
    assert ("eta", "", "failed") in await plugged.audit(USER)


async def test_admins_only_is_enforced_by_command_and_by_button(plugged: SlackWorld) -> None:
    answer, hook = await plugged.command(f"tag-late {NUMBER}", user=USER)
    refusal = await plugged.reply(answer, hook)
    assert "only trackops admins may run /track tag-late" in refusal["text"]
    assert (await plugged.service.shipment(NUMBER)).shipment.tag is None
    assert ("tag-late", NUMBER, "denied") in await plugged.audit(USER)

    value = json.dumps({"c": "tag-late", "a": [NUMBER]})
    pressed, hook = await plugged.button("track_plugin:0", value, user=USER)
    assert pressed.status == 200
    post = (await plugged.slack.wait_for_hook(hook)).body
    assert "only trackops admins may run /track tag-late" in post["text"]
    assert (await plugged.service.shipment(NUMBER)).shipment.tag is None

    pressed, hook = await plugged.button("track_plugin:0", value, user=ADMIN)
    post = (await plugged.slack.wait_for_hook(hook)).body
    assert f"tagged {NUMBER} late" in _texts(post)
    assert (await plugged.service.shipment(NUMBER)).shipment.tag == "late"
    audit = await plugged.audit(ADMIN)
    assert ("tag-late", NUMBER, "ok") in audit  # the plugin command, by the bot
    assert ("tag", f"{NUMBER} -> late", "ok") in audit  # the service's own command


async def test_a_slow_plugin_is_acknowledged_in_time_and_answers_after(
    plugged: SlackWorld,
) -> None:
    answer, hook = await plugged.command("slow", user=USER)
    assert answer.seconds < 1.5 and answer.json()["text"].endswith("I will answer here.")
    assert (await plugged.slack.wait_for_hook(hook)).body["text"] == "done after a while"


async def test_a_raising_plugin_is_one_line_and_the_bot_goes_on(plugged: SlackWorld) -> None:
    answer, hook = await plugged.command("explode", user=USER)
    assert answer.status == 200 and "Traceback" not in answer.text
    reply = await plugged.reply(answer, hook)
    assert reply["text"] == (
        "/track explode failed in plugin late: RuntimeError: the plugin has a bug."
        " Nothing else was affected."
    )
    assert ("explode", "", "failed") in await plugged.audit(USER)
    pressed, hook = await plugged.button("track_plugin:0", "{not json", user=USER)
    assert pressed.status == 200
    assert "not readable" in (await plugged.slack.wait_for_hook(hook)).body["text"]
    answer, hook = await plugged.command(f"status {NUMBER}", user=USER)
    assert NUMBER in _texts(await plugged.reply(answer, hook))  # built-ins unaffected


async def test_help_lists_plugin_subcommands_and_a_built_in_name_is_refused(
    plugged: SlackWorld,
) -> None:
    answer, hook = await plugged.command("help", user=USER)
    shown = _texts(await plugged.reply(answer, hook))
    assert "/track add NUMBER [CARRIER] [PARAM] [TAG]" in shown  # the bot's own
    assert "`/track eta NUMBER`: when a parcel arrives (plugin late)" in shown
    assert "`/track tag-late NUMBER`: tag a parcel late (plugin late, admins)" in shown
    assert "wants a built-in name" not in shown
    # /track list is still the bot's own
    answer, hook = await plugged.command("list", user=USER)
    assert "never" not in _texts(await plugged.reply(answer, hook))
    errors = plugged.service.engine.plugins._errors["late"]
    assert errors == ["/track subcommand 'list' is one of the bot's own commands; refused"]


async def test_a_plugin_that_never_answers_is_cut_off_and_recorded(
    plugged: SlackWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trackops.bots import extensions

    monkeypatch.setattr(extensions, "PLUGIN_TIMEOUT", 1.2)
    answer, hook = await plugged.command("hang", user=USER)
    assert answer.seconds < 1.2 and answer.json()["text"].endswith("I will answer here.")
    post = (await plugged.slack.wait_for_hook(hook)).body
    assert post["text"] == (
        "/track hang failed in plugin late: no answer within 1.2 s. Nothing else was affected."
    )
    assert ("hang", "", "failed") in await plugged.audit(USER)
    # A TimeoutError the plugin raises itself is its own failure, named as such.
    answer, hook = await plugged.command("own-timeout", user=USER)
    reply = await plugged.reply(answer, hook)
    assert reply["text"] == (
        "/track own-timeout failed in plugin late: TimeoutError: the carrier's site did not"
        " answer. Nothing else was affected."
    )
