"""Tests of the example plugin on its own (a local aiohttp receiver, no network)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from trackops.core.channels import ChannelError, Message
from trackops.core.config import ChannelSettings, Settings
from trackops.core.wire import Event, PackageStatus
from trackops_webhook_notifier import (
    SIGNATURE_HEADER,
    WebhookChannel,
    sign,
    trackops_register_channels,
)

MESSAGE = Message(
    notification_id=3,
    audience="seller",
    channel="webhook",
    recipient="ops@example.com",
    condition="seller",
    condition_kind="default",
    number="RR123456789CN",
    order="1001",
    carrier=3011,
    carrier_name="China Post",
    from_status=PackageStatus.IN_TRANSIT,
    to_status=PackageStatus.ALERT,
    latest_event=Event(time_raw="2026-11-20 14:05", location="Shenzhen", description="Held"),
)


@pytest.fixture
async def receiver():
    received: list[tuple[dict[str, str], bytes]] = []
    answers: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.Response(status=answers.pop(0) if answers else 204, text="nope")

    app = web.Application()
    app.router.add_post("/hook", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/hook")), received, answers
    await server.close()


async def test_posts_the_message_as_signed_json(receiver) -> None:
    url, received, _ = receiver
    channel = WebhookChannel(url, secret="shh")
    try:
        await channel.send(MESSAGE)
    finally:
        await channel.aclose()
    ((headers, body),) = received
    data = json.loads(body)
    assert data["number"] == "RR123456789CN"
    assert data["to_status"] == "alert"
    assert data["latest_event"] == {
        "time": "2026-11-20 14:05",
        "location": "Shenzhen",
        "description": "Held",
    }
    assert headers[SIGNATURE_HEADER] == sign("shh", body)


async def test_client_errors_are_final_and_server_errors_retryable(receiver) -> None:
    url, _, answers = receiver
    answers.extend([400, 503])
    channel = WebhookChannel(url)
    try:
        with pytest.raises(ChannelError) as caught:
            await channel.send(MESSAGE)
        assert caught.value.reason == "webhook answered 400: nope"
        assert caught.value.retryable is False
        with pytest.raises(ChannelError) as caught:
            await channel.send(MESSAGE)
        assert caught.value.retryable is True
    finally:
        await channel.aclose()


def test_registered_only_with_a_url() -> None:
    found: list = []
    trackops_register_channels(found.append, Settings())
    assert found == []
    settings = replace(Settings(), channels=ChannelSettings(other={"webhook": {"url": "http://x"}}))
    trackops_register_channels(found.append, settings)
    assert [c.name for c in found] == ["webhook"]
