"""Live alerts to subscribed channels, Socket Mode, and how the plugin is wired into serve.

Alerts: a sandbox parcel turns Alert, 17TRACK's push reaches the listener, the engine's rules
fan the seller alert out to the subscribed Slack channel, and the ``slack_bot`` channel posts
it to the Slack stand-in (through one 429 with Retry-After); a channel Slack refuses gives a
failed history row with Slack's error.

Socket Mode: the stand-in's ``apps.connections.open`` answers the ``ws://`` URL of its own
WebSocket, which sends envelopes and checks each acknowledgement and how long it took.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from slack_standin import APP_TOKEN, BOT_TOKEN, button_payload, slash_payload
from slack_world import ADMIN, ALERTS, CHANNEL, USER, SlackWorld
from trackops.bots.blocks import ACTION_HISTORY, ACTION_RETRACK, ACTION_STOP
from trackops.core.config import Secret
from trackops.core.sandbox import ScriptedEvent
from trackops.core.service import HistoryQuery, HistoryRow, RegisterRequest
from trackops.core.wire import PackageStatus as S

HOUR = 3600.0
BO = "LX987654321CN"
CY = "CP555666777CN"
GONE = "C0GONE"
WAIT = 10.0


async def rows_settled(world: SlackWorld, channel: str, count: int) -> list[HistoryRow]:
    """The history rows of ``channel`` once ``count`` exist and none is pending (bounded)."""
    rows: list[HistoryRow] = []
    try:
        async with asyncio.timeout(WAIT):
            while True:
                page = await world.service.history(HistoryQuery(channel=channel), limit=50)
                rows = page.items
                if len(rows) >= count and all(r.send_status != "pending" for r in rows):
                    return rows
                await asyncio.sleep(0.05)
    except TimeoutError:
        seen = [(r.number, r.recipient, r.send_status, r.reason) for r in rows]
        raise AssertionError(f"expected {count} settled {channel} rows, got {seen}") from None


async def status_is(world: SlackWorld, number: str, status: S) -> None:
    """Until ``number`` has ``status`` in the store (the push was applied; bounded)."""
    # A bounded poll: the change feed would miss a change made before it started reading.
    async with asyncio.timeout(WAIT):
        while (await world.service.shipment(number)).shipment.status != status:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def script(world: SlackWorld, number: str, status: S, text: str, hours: float) -> None:
    world.sandbox.script(
        number,
        [
            ScriptedEvent(HOUR, S.IN_TRANSIT, description="Accepted", location="Shenzhen"),
            ScriptedEvent(hours * HOUR, status, description=text, location="Köln"),
        ],
        origin_country=301,
        destination_country=1404,
    )  # fmt: skip


async def test_a_subscribed_channel_receives_the_alert_when_a_parcel_turns_alert(
    world: SlackWorld,
) -> None:
    answer, hook = await world.command("subscribe alert", channel=ALERTS)
    assert (await world.reply(answer, hook))[
        "text"
    ] == "This channel now gets trackops alerts for: Alert."
    answer, hook = await world.command("subscribe undelivered", channel=GONE)
    assert answer.status == 200
    subscriptions = await world.service.alert_subscriptions("slack_bot")
    assert {(s.target, tuple(s.statuses)) for s in subscriptions} == {
        (ALERTS, (S.ALERT,)),
        (GONE, (S.UNDELIVERED,)),
    }
    script(world, BO, S.ALERT, "Held by customs <!here>", hours=5)
    script(world, CY, S.UNDELIVERED, "Nobody home", hours=8)
    outcome = await world.service.register(
        [RegisterRequest(BO, order="1002"), RegisterRequest(CY, order="1003")], actor="test"
    )
    assert outcome.ok
    # Slack rate-limits the first post: slack_sdk waits Retry-After and posts again.
    world.slack.queue["chat.postMessage"] = [
        (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0"})
    ]

    world.sandbox.advance(2 * HOUR)  # both In transit (pushed to the listener)
    await status_is(world, BO, S.IN_TRANSIT)
    world.sandbox.advance(4 * HOUR)  # BO: Alert
    (row,) = await rows_settled(world, "slack_bot", 1)
    assert (row.number, row.recipient, row.to_status) == (BO, ALERTS, S.ALERT)
    assert row.send_status == "sent" and row.audience == "seller"
    posts = world.slack.calls_to("chat.postMessage")
    assert len(posts) == 2  # the 429, then the post
    post = posts[-1]
    assert post.auth == f"Bearer {BOT_TOKEN}" and post.args["channel"] == ALERTS
    assert post.args["text"] == "Alert: shipment LX987654321CN (order 1002) needs attention"
    shown = str(post.args["blocks"])
    assert "In transit → Alert" in shown and "China → Netherlands" in shown
    assert "Held by customs &lt;!here&gt;" in shown and "<!here>" not in shown
    assert {ACTION_STOP, ACTION_RETRACK, ACTION_HISTORY} <= {
        e.get("action_id") for b in post.args["blocks"] for e in b.get("elements", ())
    }

    # The history shows the alert's row, as `trackops history` does.
    answer, hook = await world.command(f"history {BO}", user=USER)
    history = str((await world.reply(answer, hook))["blocks"])
    assert f"*{BO}* · Alert · slack_bot → {ALERTS} · seller (default) · *sent*" in history

    world.sandbox.advance(3 * HOUR)  # CY: Undelivered, for the channel Slack does not know
    rows = await rows_settled(world, "slack_bot", 2)
    failed = next(r for r in rows if r.number == CY)
    assert failed.recipient == GONE and failed.send_status == "failed"
    assert failed.reason == "Slack refused: channel_not_found"
    # ALERTS subscribed to Alert only: nothing about CY was posted there.
    assert [c.args["channel"] for c in world.slack.calls_to("chat.postMessage")][-1] == GONE
    assert all(
        CY not in str(c.args)
        for c in world.slack.calls_to("chat.postMessage")
        if c.args["channel"] == ALERTS
    )

    answer, hook = await world.command("unsubscribe", channel=ALERTS)
    assert (await world.reply(answer, hook))[
        "text"
    ] == "This channel no longer gets trackops alerts."
    assert [s.target for s in await world.service.alert_subscriptions("slack_bot")] == [GONE]
    answer, hook = await world.command("unsubscribe", channel=ALERTS)
    assert (await world.reply(answer, hook))[
        "text"
    ] == "This channel was not subscribed to trackops alerts."


async def test_socket_mode_receives_commands_and_buttons_and_acks_them(
    world_factory: Callable[..., Any],
) -> None:
    async with world_factory(signing_secret=Secret(""), app_token=Secret(APP_TOKEN)) as world:
        slack = world.slack
        await slack.wait_for_socket()
        (opened,) = slack.calls_to("apps.connections.open")
        assert opened.auth == f"Bearer {APP_TOKEN}"
        # Without a signing secret there is no HTTP endpoint.
        async with world.session.post(world.events_url, data="x") as response:
            assert response.status in {404, 405}

        hook = slack.hook_url()
        ack = await slack.send_envelope(
            "slash_commands", slash_payload("help", user=USER, channel=CHANNEL, response_url=hook)
        )
        world.acks.append(("socket /track help", ack.seconds))
        assert ack.payload is not None
        assert "/track add NUMBER [CARRIER] [PARAM] [TAG]" in str(ack.payload["blocks"])

        ack = await slack.send_envelope(
            "slash_commands",
            slash_payload(f"stop {BO}", user=USER, channel=CHANNEL, response_url=hook),
        )
        world.acks.append(("socket /track stop", ack.seconds))
        assert ack.payload is not None
        assert ack.payload["text"].startswith("Sorry, only trackops admins may stop")

        button = button_payload(ACTION_STOP, BO, user=USER, channel=CHANNEL, response_url=hook)
        ack = await slack.send_envelope("interactive", button)
        world.acks.append(("socket button", ack.seconds))
        refusal = await slack.wait_for_hook(hook)
        assert refusal.body["text"].startswith("Sorry, only trackops admins may stop")
        assert await world.audit(USER) == [
            ("help", "", "ok"),
            ("stop", BO, "denied"),
            ("stop", BO, "denied"),
        ]
        answer_admin = await slack.send_envelope(
            "slash_commands",
            slash_payload("subscribe", user=ADMIN, channel=ALERTS, response_url=hook),
        )
        world.acks.append(("socket /track subscribe", answer_admin.seconds))
        assert [s.target for s in await world.service.alert_subscriptions()] == [ALERTS]


async def test_both_modes_at_once_with_the_signing_secret_and_the_app_token(
    world_factory: Callable[..., Any],
) -> None:
    async with world_factory(app_token=Secret(APP_TOKEN)) as world:  # and the signing secret
        slack = world.slack
        await slack.wait_for_socket()
        hook = slack.hook_url()
        ack = await slack.send_envelope(
            "slash_commands", slash_payload("help", user=USER, channel=CHANNEL, response_url=hook)
        )
        world.acks.append(("socket /track help", ack.seconds))
        assert ack.payload is not None and "/track list [STATUS]" in str(ack.payload["blocks"])
        answer, _ = await world.command("subscribe", user=ADMIN, channel=ALERTS)  # over HTTP
        assert answer.status == 200
        assert (
            answer.json()["text"]
            == "This channel now gets trackops alerts for: Alert, Undelivered."
        )
        assert await world.audit(USER) == [("help", "", "ok")]
        assert [s.target for s in await world.service.alert_subscriptions()] == [ALERTS]


async def test_a_refused_app_token_is_logged_and_serve_goes_on(
    world_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "xapp-1-not-the-app-token-0000"
    async with world_factory(signing_secret=Secret(""), app_token=Secret(wrong)) as world:
        (call,) = await world.slack.wait_for_calls("apps.connections.open")
        assert call.auth == f"Bearer {wrong}"
        async with asyncio.timeout(WAIT):
            while "Slack refused [slack] app_token (invalid_auth)" not in caplog.text:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        async with world.session.get(f"{world.url}/healthz") as response:
            assert response.status == 200
    assert wrong not in caplog.text


async def test_without_slack_settings_serve_has_no_slack_route_and_no_channel(
    world_factory: Callable[..., Any],
) -> None:
    async with world_factory(
        signing_secret=Secret(""), bot_token=Secret(""), app_token=Secret("")
    ) as world:
        async with world.session.post(world.events_url, data="x") as response:
            assert response.status in {404, 405}
        assert world.slack.calls == []
        status = await world.service.status_line()
        assert status is not None


def test_the_plugin_module_does_not_import_slack_libraries() -> None:
    # The CLI loads every plugin (for --help); slack_bolt/slack_sdk must wait for their use.
    code = (
        "import sys\n"
        "from trackops.core.config import Settings\n"
        "from trackops.core.plugins import PluginHost\n"
        "host = PluginHost(Settings())\n"
        "host.load()\n"
        "names = [i.name for i in host.describe()]\n"
        "assert 'slack_bot' in names, names\n"
        "heavy = [m for m in ('slack_bolt', 'trackops.bots.app') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
