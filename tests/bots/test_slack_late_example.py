"""The example plugin examples/trackops-late-parcels, installed into a temporary folder (never
this venv) and found through its entry point, answers its ``/track`` subcommands on the
listener ``trackops serve`` builds: signed requests, its access level enforced for a
non-admin by command and by button, every run recorded with the Slack user."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from factories import make_info
from slack_world import ADMIN, USER, SlackWorld
from trackops.core.service import RegisterRequest
from trackops.core.wire import PackageStatus

LATE = "RR100000001CN"
ALSO_LATE = "LX200000002CN"
FRESH = "RR300000003CN"

pytestmark = pytest.mark.usefixtures("late_parcels_installed")


@pytest.fixture
async def world(world_factory: Callable[..., Any]) -> AsyncIterator[SlackWorld]:
    async with world_factory() as world:
        numbers = (LATE, ALSO_LATE, FRESH)
        outcome = await world.service.register([RegisterRequest(n) for n in numbers], actor="t")
        assert outcome.ok, outcome.rejected
        now = world.sandbox.now()
        await world.service.engine.apply_track_infos(
            [
                (LATE, make_info(PackageStatus.IN_TRANSIT, now - timedelta(days=10))),
                (ALSO_LATE, make_info(PackageStatus.ALERT, now - timedelta(days=8))),
                (FRESH, make_info(PackageStatus.IN_TRANSIT, now - timedelta(days=1))),
            ]
        )
        yield world


def _texts(reply: dict[str, Any]) -> str:
    found = [str(reply.get("text", ""))]
    for block in reply.get("blocks", []):
        text = block.get("text")
        if isinstance(text, dict):
            found.append(text.get("text", ""))
    return "\n".join(found)


def _buttons(reply: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e
        for block in reply.get("blocks", [])
        for e in block.get("elements", ())
        if e.get("type") == "button"
    ]


async def test_track_late_answers_anyone_with_buttons(world: SlackWorld) -> None:
    answer, hook = await world.command("late", user=USER)
    assert answer.status == 200 and answer.seconds < 3
    reply = await world.reply(answer, hook)
    shown = _texts(reply)
    assert "*2 late parcel(s)* (no event for 7 days):" in shown
    assert LATE in shown and ALSO_LATE in shown and FRESH not in shown
    assert [json.loads(b["value"]) for b in _buttons(reply)] == [
        {"c": "tag-late", "a": [LATE]},
        {"c": "tag-late", "a": [ALSO_LATE]},
    ]
    assert ("late", "", "ok") in await world.audit(USER)
    answer, hook = await world.command("late soon", user=USER)
    assert "DAYS is a whole number, not 'soon'" in _texts(await world.reply(answer, hook))
    answer, hook = await world.command("late 99999999999", user=USER)
    assert "DAYS is from 1 to 3650, not 99999999999" in _texts(await world.reply(answer, hook))
    assert ("late", "99999999999", "failed") in await world.audit(USER)


async def test_tag_late_is_for_admins_by_command_and_by_button(world: SlackWorld) -> None:
    answer, hook = await world.command(f"tag-late {LATE}", user=USER)
    assert (
        "only trackops admins may run /track tag-late" in (await world.reply(answer, hook))["text"]
    )
    value = json.dumps({"c": "tag-late", "a": [LATE]})
    pressed, hook = await world.button("track_plugin:0", value, user=USER)
    assert pressed.status == 200
    assert "only trackops admins" in (await world.slack.wait_for_hook(hook)).body["text"]
    assert (await world.service.shipment(LATE)).shipment.tag is None
    assert [a for a in await world.audit(USER) if a[0] == "tag-late"] == [
        ("tag-late", LATE, "denied"),
        ("tag-late", LATE, "denied"),
    ]

    pressed, hook = await world.button("track_plugin:0", value, user=ADMIN)
    assert f"{LATE} is tagged late." in _texts((await world.slack.wait_for_hook(hook)).body)
    assert (await world.service.shipment(LATE)).shipment.tag == "late"
    audit = await world.audit(ADMIN)
    assert ("tag-late", LATE, "ok") in audit and ("tag", f"{LATE} -> late", "ok") in audit


async def test_track_help_lists_the_plugin_beside_the_bots_own(world: SlackWorld) -> None:
    answer, hook = await world.command("help", user=USER)
    shown = _texts(await world.reply(answer, hook))
    assert "/track status NUMBER|ORDER" in shown
    assert (
        "`/track late [DAYS]`: tracked parcels with no carrier event for DAYS days (default 7)"
        " (plugin late)" in shown
    )
    assert "`/track tag-late NUMBER`: tag a parcel 'late' (plugin late, admins)" in shown
