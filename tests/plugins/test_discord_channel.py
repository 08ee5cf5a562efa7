"""The Discord channel against a local aiohttp stand-in for a Discord webhook."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from plugin_helpers import FakeDiscord, make_message
from trackops.core.channels import ChannelError
from trackops.core.config import ChannelSettings, Settings
from trackops.core.wire import PackageStatus
from trackops.plugins import discord as discord_plugin
from trackops.plugins.discord import STATUS_COLOURS, DiscordChannel

Serve = Callable[[web.Application], Awaitable[TestServer]]


async def _channel(serve: Serve, fake: FakeDiscord, **kwargs: Any) -> DiscordChannel:
    server = await serve(fake.app)
    return DiscordChannel(str(server.make_url("/api/webhooks/1/secret-token")), **kwargs)


async def test_posts_an_embed(serve: Serve) -> None:
    fake = FakeDiscord()
    channel = await _channel(serve, fake)
    try:
        await channel.send(make_message(channel="discord"))
    finally:
        await channel.aclose()
    ((_, payload),) = fake.calls
    assert payload["allowed_mentions"] == {"parse": []}
    (embed,) = payload["embeds"]
    assert embed["title"] == "Your order 1001 is out for delivery"
    assert embed["url"] == "https://t.17track.net/en#nums=RR123456789CN"
    assert embed["color"] == STATUS_COLOURS[PackageStatus.PICK_UP]
    assert embed["timestamp"] == "2026-11-20T14:05:00Z"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Carrier"] == "China Post"
    assert fields["Status"] == "In transit → Pick up"
    assert fields["Order"] == "1001"
    assert fields["Latest event"] == (
        "2026-11-20 14:05 · Köln, Paketzentrum · Out for delivery — Zustellung heute"
    )


def test_colour_follows_the_status() -> None:
    delivered = discord_plugin.build_payload(make_message(to_status=PackageStatus.DELIVERED))
    alert = discord_plugin.build_payload(make_message(to_status=PackageStatus.ALERT))
    assert delivered["embeds"][0]["color"] == 0x22C55E
    assert alert["embeds"][0]["color"] == 0xEF4444


async def test_429_waits_retry_after_then_succeeds(serve: Serve) -> None:
    fake = FakeDiscord(
        web.json_response(
            {"message": "You are being rate limited.", "retry_after": 0.05, "global": False},
            status=429,
        )
    )
    channel = await _channel(serve, fake)
    try:
        await channel.send(make_message())
    finally:
        await channel.aclose()
    assert len(fake.calls) == 2
    assert fake.calls[1][0] - fake.calls[0][0] >= 0.045


async def test_429_with_only_a_retry_after_header(serve: Serve) -> None:
    fake = FakeDiscord(web.Response(status=429, headers={"Retry-After": "0.05"}))
    channel = await _channel(serve, fake)
    try:
        await channel.send(make_message())
    finally:
        await channel.aclose()
    assert len(fake.calls) == 2


async def test_429_beyond_the_wait_bound_is_a_retryable_failure(serve: Serve) -> None:
    fake = FakeDiscord(web.json_response({"retry_after": 120}, status=429))
    channel = await _channel(serve, fake, max_retry_wait=1.0)
    try:
        with pytest.raises(ChannelError) as caught:
            await channel.send(make_message())
    finally:
        await channel.aclose()
    assert caught.value.retryable is True
    assert "retry after 120s" in caught.value.reason
    assert len(fake.calls) == 1


async def test_refusal_gives_discords_message_without_the_url(serve: Serve) -> None:
    fake = FakeDiscord(web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404))
    channel = await _channel(serve, fake)
    try:
        with pytest.raises(ChannelError) as caught:
            await channel.send(make_message())
    finally:
        await channel.aclose()
    assert caught.value.reason == "Discord answered 404: Unknown Webhook (code 10015)"
    assert caught.value.retryable is False
    assert "secret-token" not in caught.value.reason


def test_registered_only_with_a_webhook_url() -> None:
    found: list[Any] = []
    discord_plugin.trackops_register_channels(found.append, Settings())
    assert found == []
    settings = replace(
        Settings(),
        channels=ChannelSettings(other={"discord": {"webhook_url": "https://discord.test/x"}}),
    )
    discord_plugin.trackops_register_channels(found.append, settings)
    assert [c.name for c in found] == ["discord"]
