"""The Slack bot end to end in HTTP mode: signed requests to the listener ``trackops serve``
builds (``trackops.core.runtime``), the engine over the sandbox, Slack's cloud a local stand-in.

Each test checks what the person in Slack sees (the acknowledgement, the response_url posts,
the Web API calls), what reached 17TRACK (the sandbox's request log) and what was recorded
(the audit through the service). Every acknowledgement is measured (see conftest).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
import urllib.parse
from typing import Any

import pytest
from factories import KEY
from slack_standin import (
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    button_payload,
    form,
    sign,
    slash_body,
    view_payload,
)
from slack_world import ADMIN, ALERTS, CHANNEL, USER, SlackWorld
from trackops.bots.blocks import (
    ACTION_HISTORY,
    ACTION_MORE,
    ACTION_RETRACK,
    ACTION_STOP,
    PARAM_BLOCK,
    PARAM_INPUT,
    PARAM_VIEW,
)
from trackops.core.sandbox import ScriptedEvent
from trackops.core.service import RegisterRequest
from trackops.core.wire import PackageStatus as S

NUMBER = "RR123456785CN"
OTHER = "LX987654321CN"
HOUR = 3600.0


def texts(blocks: list[dict[str, Any]]) -> str:
    """Every text a person reads in ``blocks`` (headers, sections, fields, buttons, context)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in {"plain_text", "mrkdwn"} and "text" in node:
                out.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return "\n".join(out)


def buttons(blocks: list[dict[str, Any]]) -> dict[str, str]:
    """action_id -> value of every button."""
    found = {}
    for block in blocks:
        for element in block.get("elements", ()):
            if element.get("type") == "button":
                found[element["action_id"]] = element.get("value", "")
    return found


async def register(world: SlackWorld, *numbers: str) -> None:
    outcome = await world.service.register(
        [RegisterRequest(n, order=f"10{i:02d}") for i, n in enumerate(numbers)], actor="test"
    )
    assert outcome.ok, outcome.rejected


# --------------------------------------------------------------------------- signatures


async def test_bad_signature_and_stale_timestamp_get_401_and_reach_nothing(
    world: SlackWorld,
) -> None:
    before = world.api_requests()
    hook = world.slack.hook_url()
    body = slash_body("subscribe", user=ADMIN, channel=CHANNEL, response_url=hook)

    wrong = await world.post(body, sign(body, secret="not-the-signing-secret"), "bad signature")
    stale = await world.post(
        body, sign(body, timestamp=int(time.time()) - 6 * 60), "stale timestamp"
    )
    unsigned = await world.post(body, {"Content-Type": "application/x-www-form-urlencoded"}, "")
    tampered_headers = sign(body)
    tampered = await world.post(body.replace("subscribe", "unsubscribe"), tampered_headers, "")

    # What docs/slack.md's check of the public URL sends: `curl -X POST URL`, nothing else.
    async with world.session.post(world.events_url, skip_auto_headers={"Content-Type"}) as bare:
        assert bare.status == 401

    assert [a.status for a in (wrong, stale, unsigned, tampered)] == [401, 401, 401, 401]
    # Nothing else ran: no Slack call (not even auth.test), no answer, no 17TRACK request,
    # no audit row and no subscription.
    assert world.slack.calls == [] and world.slack.hooks == []
    assert world.api_requests() == before
    assert await world.audit(ADMIN) == []
    assert await world.service.alert_subscriptions() == []

    # The same body, correctly signed and fresh, is answered.
    ok = await world.post(body, sign(body), "/track subscribe")
    assert ok.status == 200 and "Alert, Undelivered" in ok.json()["text"]


# --------------------------------------------------------------------------- commands


async def test_help_and_an_unknown_command_answer_the_help(world: SlackWorld) -> None:
    for text in ("help", "", "frobnicate RR1"):
        answer, hook = await world.command(text, user=USER)
        assert answer.status == 200
        reply = await world.reply(answer, hook)
        assert reply["response_type"] == "ephemeral"
        shown = texts(reply["blocks"])
        assert "/track add NUMBER [CARRIER] [PARAM] [TAG]" in shown
        assert "/track subscribe [STATUS ...]" in shown
    assert "`frobnicate` is not a /track command" in shown
    assert [a for a, _, _ in await world.audit(USER)] == ["help", "help", "help"]


async def test_add_then_status_with_timeline_and_buttons(world: SlackWorld) -> None:
    world.sandbox.script(
        NUMBER,
        [
            ScriptedEvent(HOUR, S.IN_TRANSIT, description="Accepted", location="Shenzhen"),
            ScriptedEvent(3 * HOUR, S.IN_TRANSIT, description="Left <!channel>", location="Köln"),
        ],
        origin_country=301,
        destination_country=1404,
    )  # fmt: skip
    answer, hook = await world.command(f"add {NUMBER} - - gift", user=USER)
    assert answer.status == 200
    assert (await world.reply(answer, hook))["text"] == f"{NUMBER} registered."
    registration = world.sandbox.tracked(NUMBER)
    assert registration is not None and registration.tag == "gift"
    # the carrier by its 17TRACK code, as by its name
    answer, hook = await world.command(f"add {OTHER} 3011", user=USER)
    assert (await world.reply(answer, hook))["text"] == f"{OTHER} registered."
    other = world.sandbox.tracked(OTHER)
    assert other is not None and other.carrier == 3011

    world.sandbox.advance(4 * HOUR)
    await world.service.sync(actor="test")
    answer, hook = await world.command(f"status {NUMBER}", user=USER)
    reply = await world.reply(answer, hook)
    shown = texts(reply["blocks"])
    assert reply["blocks"][0]["type"] == "header"
    assert reply["blocks"][0]["text"]["text"] == f"{NUMBER} · In transit"
    assert "*Route*\nChina → Netherlands" in shown
    assert "*Carrier*\nChina Post" in shown
    assert "Accepted" in shown and "Left &lt;!channel&gt;" in shown
    assert "<!channel>" not in json.dumps(reply["blocks"])
    assert buttons(reply["blocks"]) == {
        ACTION_STOP: NUMBER,
        ACTION_RETRACK: NUMBER,
        ACTION_HISTORY: NUMBER,
    }
    # By order number too; and an unknown one is a plain sentence.
    by_order, _ = await world.command("status nothing-like-it", user=USER)
    assert by_order.status == 200 and "Traceback" not in by_order.text
    assert by_order.json()["text"]
    assert ("register", NUMBER, "ok") in await world.audit(USER)
    assert ("status", NUMBER, "ok") in await world.audit(USER)


async def test_list_pages_with_a_more_button(world: SlackWorld) -> None:
    numbers = [f"RR{100000000 + i:09d}CN" for i in range(12)]
    await register(world, *numbers)
    answer, hook = await world.command("list not_found", user=USER)
    blocks = (await world.reply(answer, hook))["blocks"]
    shown = texts(blocks)
    assert "*Not found shipments* 1-10 of 12" in shown
    assert sum(n in shown for n in numbers) == 10
    more = buttons(blocks)[ACTION_MORE]

    pressed, hook = await world.button(ACTION_MORE, more, user=USER)
    assert pressed.status == 200
    page = (await world.slack.wait_for_hook(hook)).body
    assert page["replace_original"] is True
    shown2 = texts(page["blocks"])
    assert "11-12 of 12" in shown2
    assert sum(n in shown2 for n in numbers) == 2
    assert ACTION_MORE not in buttons(page["blocks"])
    assert set(numbers) == {n for n in numbers if n in shown or n in shown2}
    assert await world.audit(USER) == [("list", "not_found", "ok"), ("list", "not_found", "ok")]


async def test_history_command_and_button(world: SlackWorld) -> None:
    await register(world, NUMBER)
    answer, hook = await world.command(f"history {NUMBER}", user=USER)
    assert f"No notifications for {NUMBER}" in texts((await world.reply(answer, hook))["blocks"])
    pressed, hook = await world.button(ACTION_HISTORY, NUMBER, user=USER)
    assert pressed.status == 200
    post = (await world.slack.wait_for_hook(hook)).body
    assert post["replace_original"] is False
    assert f"No notifications for {NUMBER}" in texts(post["blocks"])
    assert [a for a, _, _ in await world.audit(USER)] == ["history", "history"]
    # The History button only reads: the parcel is still there and tracked.
    registration = world.sandbox.tracked(NUMBER)
    assert registration is not None and registration.active


async def test_status_by_order_and_history_by_number_order_and_email(world: SlackWorld) -> None:
    for number, hours in ((NUMBER, 3), (OTHER, 5)):
        world.sandbox.script(
            number,
            [
                ScriptedEvent(HOUR, S.IN_TRANSIT, description="Accepted", location="Shenzhen"),
                ScriptedEvent(hours * HOUR, S.PICK_UP, description="Ready for pickup",
                              location="Köln"),
            ],
            origin_country=301,
            destination_country=1404,
        )  # fmt: skip
    outcome = await world.service.register(
        [
            RegisterRequest(NUMBER, order="4711", email="zoe@example.com", name="Zoë Müller"),
            RegisterRequest(OTHER, order="4712", email="max@example.com", name="Max Mustermann"),
        ],
        actor="test",
    )
    assert outcome.ok, outcome.rejected
    world.sandbox.advance(6 * HOUR)
    await world.service.sync(actor="test")

    # status by the order number: the shipment's own Block Kit
    answer, hook = await world.command("status 4711", user=USER)
    reply = await world.reply(answer, hook)
    assert reply["blocks"][0]["text"]["text"] == f"{NUMBER} · Pick up"
    assert buttons(reply["blocks"])[ACTION_HISTORY] == NUMBER

    # history by number, by order and by the buyer's email: that parcel's rows only
    for search in (NUMBER, "4711", "zoe@example.com"):
        answer, hook = await world.command(f"history {search}", user=USER)
        shown = texts((await world.reply(answer, hook))["blocks"])
        assert f"*Notifications for {search}*" in shown, shown
        assert f"*{NUMBER}* · Pick up · memory → zoe@example.com" in shown, shown
        assert OTHER not in shown and "max@example.com" not in shown
    answer, hook = await world.command("history nobody@example.com", user=USER)
    assert "No notifications for nobody@example.com" in texts(
        (await world.reply(answer, hook))["blocks"]
    )
    assert [(a, t) for a, t, _ in await world.audit(USER)] == [
        ("status", NUMBER),
        ("history", NUMBER),
        ("history", "4711"),
        ("history", "zoe@example.com"),
        ("history", "nobody@example.com"),
    ]


# --------------------------------------------------------------------------- access control


async def test_a_non_admin_is_refused_by_command_and_by_button(world: SlackWorld) -> None:
    await register(world, NUMBER)
    before = world.api_requests()
    for text in (f"stop {NUMBER}", f"delete {NUMBER}", f"carrier {NUMBER} 3011"):
        answer, hook = await world.command(text, user=USER)
        assert answer.status == 200
        reply = answer.json()
        assert reply["response_type"] == "ephemeral"
        assert reply["text"].startswith("Sorry, only trackops admins may")
    pressed, hook = await world.button(ACTION_STOP, NUMBER, user=USER)
    assert pressed.status == 200
    refusal = (await world.slack.wait_for_hook(hook)).body
    assert refusal["response_type"] == "ephemeral" and refusal["replace_original"] is False
    assert refusal["text"].startswith("Sorry, only trackops admins may stop tracking")

    # Nothing reached 17TRACK and the parcel is still tracked.
    assert world.api_requests() == before
    registration = world.sandbox.tracked(NUMBER)
    assert registration is not None and registration.active
    assert (await world.service.shipment(NUMBER)).shipment.active
    assert await world.audit(USER) == [
        ("stop", NUMBER, "denied"),
        ("delete", NUMBER, "denied"),
        ("change-carrier", NUMBER, "denied"),
        ("stop", NUMBER, "denied"),
    ]

    # Retrack is for everyone; an admin may stop, by button too.
    pressed, hook = await world.button(ACTION_STOP, NUMBER, user=ADMIN)
    assert pressed.status == 200
    done = (await world.slack.wait_for_hook(hook)).body
    assert done["text"] == f"{NUMBER} stopped tracking."
    registration = world.sandbox.tracked(NUMBER)
    assert registration is not None and not registration.active
    pressed, hook = await world.button(ACTION_RETRACK, NUMBER, user=USER)
    again = (await world.slack.wait_for_hook(hook)).body
    assert again["text"] == f"{NUMBER} is tracked again."
    assert ("stop", NUMBER, "ok") in await world.audit(ADMIN)
    assert ("retrack", NUMBER, "ok") in await world.audit(USER)


async def test_a_store_busy_with_another_writer_does_not_hold_back_the_answer(
    world: SlackWorld,
) -> None:
    await register(world, NUMBER)
    path = world.settings.store.url.removeprefix("sqlite:///")
    other = sqlite3.connect(path, isolation_level=None)  # another process's writer, say
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        answer, _ = await world.command(f"stop {NUMBER}", user=USER)
        assert answer.status == 200 and answer.seconds < 2.0  # 1 s for the row, then the answer
        assert answer.json()["text"].startswith("Sorry, only trackops admins may stop tracking")
        assert await world.audit(USER) == []  # waiting for the lock
    finally:
        other.execute("ROLLBACK")
        other.close()
    async with asyncio.timeout(10):  # written once the store is free
        while await world.audit(USER) != [("stop", NUMBER, "denied")]:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_an_admin_deletes_and_changes_carrier(world: SlackWorld) -> None:
    await register(world, NUMBER, OTHER)
    answer, hook = await world.command(f'carrier {NUMBER} "royal mail"')
    assert answer.status == 200
    reply = await world.reply(answer, hook)
    assert reply["text"] == f"{NUMBER} now has carrier Royal Mail (11031)."
    registration = world.sandbox.tracked(NUMBER)
    assert registration is not None and registration.carrier == 11031

    answer, hook = await world.command(f"delete {OTHER}")
    assert (await world.reply(answer, hook))["text"] == f"{OTHER} deleted."
    assert world.sandbox.tracked(OTHER) is None
    audit = await world.audit(ADMIN)
    assert ("delete", OTHER, "ok") in audit
    assert ("change-carrier", f"{NUMBER} -> 11031", "ok") in audit


# --------------------------------------------------------------------------- slow work


async def test_a_register_waiting_on_the_rate_limit_answers_after_the_ack(
    world: SlackWorld,
) -> None:
    # 17TRACK answers 429 three times: the client backs off for seconds, longer than Slack
    # waits for an acknowledgement.
    world.sandbox.fail_next(429, count=3)
    answer, hook = await world.command(f"add {NUMBER}", user=USER)
    assert answer.status == 200
    assert answer.seconds < 3.0
    assert answer.json()["text"] == f"Registering {NUMBER} with 17TRACK… I will answer here."
    result = await world.slack.wait_for_hook(hook)
    assert result.body["text"] == f"{NUMBER} registered."
    assert result.body["response_type"] == "ephemeral"
    assert world.sandbox.tracked(NUMBER) is not None


async def test_17track_refusing_the_key_is_a_plain_answer(world: SlackWorld) -> None:
    await register(world, NUMBER)
    world.sandbox.fail_next(401)
    answer, hook = await world.command(f"retrack {NUMBER}", user=USER)
    assert answer.status == 200
    reply = await world.reply(answer, hook)
    if reply["text"].startswith("Retracking"):  # answered after the ack
        reply = (await world.slack.wait_for_hook(hook)).body
    assert "key" in reply["text"].lower() and "Traceback" not in reply["text"]
    assert KEY not in json.dumps(reply)
    assert ("retrack", NUMBER, "failed") in await world.audit(USER)


# --------------------------------------------------------------------------- the modal


async def test_a_carrier_needing_a_param_asks_for_it_in_a_modal(world: SlackWorld) -> None:
    number = "123456789012"
    answer, _ = await world.command(f"add {number} GLS", user=USER)
    assert answer.status == 200 and answer.text == ""
    (opened,) = await world.slack.wait_for_calls("views.open")
    assert opened.auth == f"Bearer {BOT_TOKEN}"
    assert opened.args["trigger_id"] == f"1337.42.{USER}"
    view = opened.args["view"]
    assert view["callback_id"] == PARAM_VIEW
    assert "postal code" in texts(view["blocks"]).lower()
    assert world.sandbox.tracked(number) is None

    async def submit(value: str) -> Any:
        values = {PARAM_BLOCK: {PARAM_INPUT: {"type": "plain_text_input", "value": value}}}
        payload = view_payload(PARAM_VIEW, view["private_metadata"], values, user=USER)
        body = form(payload)
        return await world.post(body, sign(body), "modal submission")

    empty = await submit("   ")
    assert empty.json()["response_action"] == "errors"
    assert PARAM_BLOCK in empty.json()["errors"]

    done = await submit("8010")
    assert done.status == 200 and done.text == ""
    (posted,) = await world.slack.wait_for_calls("chat.postEphemeral")
    assert posted.args["channel"] == CHANNEL and posted.args["user"] == USER
    assert posted.args["text"] == f"{number} registered."
    registration = world.sandbox.tracked(number)
    assert registration is not None and registration.carrier == 100005
    assert registration.param == "8010"
    # The command, each refused form and the register are in the audit log with the user.
    audit = await world.audit(USER)
    assert [(a, t, o) for a, t, o in audit] == [
        ("register", number, "ok"),  # the form was opened
        ("register", number, "failed"),  # sent empty
        ("register", number, "ok"),  # registered
    ]
    assert (await world.service.audit(actor=f"slack:{USER}", limit=5)).items[-1].detail == (
        "asked for the postal code"
    )


async def test_without_a_form_a_missing_param_is_a_recorded_answer(world: SlackWorld) -> None:
    # Slack sent no trigger_id (the form cannot open): the answer says what is missing.
    hook = world.slack.hook_url()
    fields = dict(
        urllib.parse.parse_qsl(
            slash_body("add 123456789012 GLS", user=USER, channel=CHANNEL, response_url=hook)
        )
    )
    del fields["trigger_id"]
    body = urllib.parse.urlencode(fields)
    answer = await world.post(body, sign(body), "/track add without a trigger")
    assert answer.status == 200
    assert answer.json()["text"].startswith("123456789012 needs a postal code for this carrier")
    assert world.slack.calls_to("views.open") == []
    assert await world.audit(USER) == [("register", "123456789012", "failed")]


async def test_damaged_modal_metadata_is_refused_in_the_form(world: SlackWorld) -> None:
    values = {PARAM_BLOCK: {PARAM_INPUT: {"type": "plain_text_input", "value": "8010"}}}
    for metadata in ("", "not json", json.dumps({"n": NUMBER}), json.dumps([1, 2])):
        body = form(view_payload(PARAM_VIEW, metadata, values, user=USER))
        answer = await world.post(body, sign(body), "damaged modal")
        assert answer.status == 200
        assert answer.json()["response_action"] == "errors"
        assert "damaged" in answer.json()["errors"][PARAM_BLOCK]
    assert world.slack.calls_to("chat.postEphemeral") == []


# --------------------------------------------------------------------------- hostile payloads


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('add RR123456785CN "China Post', "a quote is not closed"),
        ("status RR1\x1b[2J", "control characters"),
        ("list lost", "unknown package status 'lost'"),
        ("subscribe lost", "unknown status 'lost'"),
        ("stop", "missing arguments; usage: /track stop NUMBER"),
        ("add RR123456785CN <@U0ADMIN>", "no carrier matches '&lt;@U0ADMIN&gt;'"),
    ],
)
async def test_malformed_commands_get_a_clear_message(
    world: SlackWorld, text: str, expected: str
) -> None:
    answer, hook = await world.command(text)
    assert answer.status == 200
    reply = await world.reply(answer, hook)
    assert expected.lower() in reply["text"].lower(), reply["text"]
    assert "Traceback" not in answer.text


async def test_malformed_payloads_never_get_a_traceback(world: SlackWorld) -> None:
    def signed(body: str) -> tuple[str, dict[str, str]]:
        return body, sign(body)

    async with world.session.post(
        world.events_url, data=b"text=\xff\xfe", headers={"Content-Type": "text/plain"}
    ) as response:
        assert response.status == 400
        assert await response.text() == "not a Slack request: the body is not UTF-8 text"

    not_json = await world.post(*signed("payload=%7Bnot-json"), "not json")
    assert (
        not_json.status == 400 and not_json.text == "not a Slack request: its payload is not JSON"
    )

    no_user = await world.post(
        *signed(slash_body("help", user="", channel=CHANNEL, response_url="")), "no user"
    )
    assert no_user.status == 200
    assert "names no valid Slack user" in no_user.json()["text"]

    hook = world.slack.hook_url()
    hostile = button_payload(
        ACTION_STOP, "<!channel>", user=ADMIN, channel=CHANNEL, response_url=hook
    )
    pressed = await world.post(*signed(form(hostile)), "hostile button")
    assert pressed.status == 200
    answer = (await world.slack.wait_for_hook(hook)).body
    assert answer["text"] == "This button does not name a tracking number; nothing was done."

    # A response_url outside Slack's hosts is not followed.
    elsewhere = button_payload(
        ACTION_HISTORY, NUMBER, user=ADMIN, channel=CHANNEL,
        response_url="http://169.254.169.254/latest/meta-data",
    )  # fmt: skip
    pressed = await world.post(*signed(form(elsewhere)), "foreign response_url")
    assert pressed.status == 200

    broken_hook = world.slack.hook_url()
    more = button_payload(ACTION_MORE, "{]", user=USER, channel=CHANNEL, response_url=broken_hook)
    await world.post(*signed(form(more)), "broken More")
    answer = (await world.slack.wait_for_hook(broken_hook)).body  # recorded before answering
    assert answer["text"] == "This button's page is not readable; run /track list again."
    assert ("list", "", "failed") in await world.audit(USER)

    forged_hook = world.slack.hook_url()
    forged = json.dumps({"after": "not-a-cursor", "status": None, "n": 10})
    more = button_payload(ACTION_MORE, forged, user=USER, channel=CHANNEL, response_url=forged_hook)
    await world.post(*signed(form(more)), "forged cursor")
    answer = (await world.slack.wait_for_hook(forged_hook)).body
    assert "cursor" in answer["text"].lower() and "Traceback" not in answer["text"]
    assert all("Traceback" not in h.body.get("text", "") for h in world.slack.hooks)


async def test_secrets_stay_out_of_logs_and_reprs(
    world: SlackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await world.command("help")
    await world.command(f"add {NUMBER}", user=USER)
    await world.command("subscribe", channel=ALERTS)
    body = slash_body("help", user=ADMIN, channel=CHANNEL, response_url=world.slack.hook_url())
    await world.post(body, sign(body, secret="wrong"), "bad signature")
    seen = caplog.text + repr(world.settings) + repr(world.settings.slack)
    for secret in (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET):
        assert secret not in seen
