"""The Slack notifier against a local aiohttp stand-in for Slack (webhook and Web API)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from plugin_helpers import SLACK_TOKEN, FakeSlack, make_message
from trackops.core.channels import ChannelError
from trackops.core.config import ChannelSettings, ConfigError, Settings
from trackops.core.wire import PackageStatus
from trackops.plugins import slack as slack_plugin
from trackops.plugins.slack import SlackChannel

Serve = Callable[[web.Application], Awaitable[TestServer]]
TOKEN = SLACK_TOKEN


@pytest.fixture
async def slack(serve: Serve) -> tuple[FakeSlack, TestServer]:
    fake = FakeSlack()
    return fake, await serve(fake.app)


def _texts(blocks: list[dict[str, Any]]) -> str:
    out = []
    for block in blocks:
        if "text" in block:
            out.append(block["text"]["text"])
        for field in block.get("fields", ()):
            out.append(field["text"])
        for element in block.get("elements", ()):
            out.append(element.get("text", ""))
    return "\n".join(out)


def _assert_shipment_blocks(blocks: list[dict[str, Any]]) -> None:
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Your order 1001 is out for delivery"},
    }
    section = blocks[1]
    assert section["type"] == "section"
    assert section["text"]["text"] == (
        "Tracking number <https://t.17track.net/en#nums=RR123456789CN|RR123456789CN>"
    )
    fields = [f["text"] for f in section["fields"]]
    assert "*Status*\nIn transit → Pick up" in fields
    assert "*Carrier*\nChina Post" in fields
    assert "*Route*\nChina → Netherlands" in fields
    assert "*Order*\n1001" in fields
    assert any(
        f.startswith("*Latest event*\n2026-11-20 14:05 · Köln, Paketzentrum") for f in fields
    )


async def test_incoming_webhook_posts_block_kit(slack: tuple[FakeSlack, TestServer]) -> None:
    fake, server = slack
    channel = SlackChannel(webhook_url=str(server.make_url("/services/T0/B0/ok")))
    try:
        await channel.send(make_message(channel="slack"))
    finally:
        await channel.aclose()
    (posted,) = fake.webhook_posts
    assert posted["text"] == "Your order 1001 is out for delivery"
    _assert_shipment_blocks(posted["blocks"])


async def test_bot_token_uses_chat_post_message(slack: tuple[FakeSlack, TestServer]) -> None:
    fake, server = slack
    channel = SlackChannel(
        bot_token=TOKEN, channel="#shipping", api_base_url=str(server.make_url("/api/"))
    )
    try:
        await channel.send(make_message(channel="slack"))
    finally:
        await channel.aclose()
    ((path, auth, body),) = fake.api_calls
    assert path == "/api/chat.postMessage"
    assert auth == f"Bearer {TOKEN}"
    assert body["channel"] == "#shipping"
    assert body["text"] == "Your order 1001 is out for delivery"
    _assert_shipment_blocks(body["blocks"])


async def test_slack_error_string_is_the_reason_and_token_never_shows(
    slack: tuple[FakeSlack, TestServer],
) -> None:
    _, server = slack
    base = str(server.make_url("/api/"))
    wrong_channel = SlackChannel(bot_token=TOKEN, channel="#nope", api_base_url=base)
    bad_token = SlackChannel(bot_token="xoxb-wrong-secret", channel="#shipping", api_base_url=base)
    try:
        with pytest.raises(ChannelError) as caught:
            await wrong_channel.send(make_message())
        assert caught.value.reason == "Slack refused: channel_not_found"
        assert caught.value.retryable is False
        with pytest.raises(ChannelError) as caught:
            await bad_token.send(make_message())
        assert caught.value.reason == "Slack refused: invalid_auth"
        assert "xoxb" not in caught.value.reason
    finally:
        await wrong_channel.aclose()
        await bad_token.aclose()


async def test_webhook_refusal_names_slacks_error_not_the_url(
    slack: tuple[FakeSlack, TestServer],
) -> None:
    _, server = slack
    url = str(server.make_url("/services/T0/B0/gone"))
    channel = SlackChannel(webhook_url=url)
    try:
        with pytest.raises(ChannelError) as caught:
            await channel.send(make_message())
    finally:
        await channel.aclose()
    assert caught.value.reason == "Slack webhook answered 404: no_service"
    assert caught.value.retryable is False
    assert "/services/" not in caught.value.reason


async def test_event_text_cannot_ping_or_forge_links(slack: tuple[FakeSlack, TestServer]) -> None:
    import msgspec

    fake, server = slack
    message = make_message()
    event = msgspec.structs.replace(
        message.latest_event, description="<!channel> see <http://evil|here> & more"
    )
    channel = SlackChannel(webhook_url=str(server.make_url("/services/T0/B0/ok")))
    try:
        await channel.send(replace(message, latest_event=event))
    finally:
        await channel.aclose()
    text = _texts(fake.webhook_posts[0]["blocks"])
    assert "&lt;!channel&gt; see &lt;http://evil|here&gt; &amp; more" in text
    assert "<!channel>" not in text


async def test_report_message(slack: tuple[FakeSlack, TestServer]) -> None:
    fake, server = slack
    message = make_message(
        audience="report",
        number="",
        order=None,
        to_status=None,
        subject="Weekly report",
        body="Delivered: 12",
    )
    channel = SlackChannel(webhook_url=str(server.make_url("/services/T0/B0/ok")))
    try:
        await channel.send(message)
    finally:
        await channel.aclose()
    blocks = fake.webhook_posts[0]["blocks"]
    assert blocks[0]["text"]["text"] == "Weekly report"
    assert blocks[1]["text"]["text"] == "Delivered: 12"


def _settings(table: dict[str, Any]) -> Settings:
    return replace(Settings(), channels=ChannelSettings(other={"slack": table}))


def _registered(settings: Settings) -> list[Any]:
    found: list[Any] = []
    slack_plugin.trackops_register_channels(found.append, settings)
    return found


def test_registered_only_when_configured() -> None:
    assert _registered(Settings()) == []
    assert _registered(_settings({"webhook_url": ""})) == []
    (channel,) = _registered(_settings({"webhook_url": "https://hooks.slack.com/services/x"}))
    assert channel.name == "slack"
    (channel,) = _registered(_settings({"bot_token": TOKEN, "channel": "#shipping"}))
    assert channel.name == "slack"


def test_bot_token_without_channel_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\[channels.slack\] channel") as caught:
        _registered(_settings({"bot_token": TOKEN}))
    assert TOKEN not in str(caught.value)


def test_seller_alert_header() -> None:
    from trackops.plugins.slack import build_blocks

    text, blocks = build_blocks(make_message(audience="seller", to_status=PackageStatus.ALERT))
    assert text == "Alert: shipment RR123456789CN (order 1001) needs attention"
    assert blocks[0].to_dict()["type"] == "header"
