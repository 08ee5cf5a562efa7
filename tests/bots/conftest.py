"""The Slack bot's world: the sandbox (17TRACK), the listener as ``trackops serve`` builds it
(``trackops.core.runtime``), and a local stand-in for Slack's cloud that records every call.

``slack_world`` starts them all; ``SlackWorld.post`` sends a signed request to the listener's
``/slack/events`` and measures the acknowledgement; every acknowledgement of a test is checked
to be within Slack's 3 seconds when the test ends (and the figures are printed).
"""

from __future__ import annotations

import dataclasses
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from factories import KEY, settings_for
from slack_standin import (
    BOT_TOKEN,
    SIGNING_SECRET,
    SlackStandIn,
    button_payload,
    form,
    sign,
    slash_body,
)
from trackops.core.channels import RecordingChannel
from trackops.core.config import ApiSettings, Secret, Settings, SlackBotSettings
from trackops.core.plugins import PluginHost
from trackops.core.runtime import open_service, running
from trackops.core.sandbox import SandboxConfig, SandboxState, running_sandbox
from trackops.core.service import Service

Serve = Callable[[web.Application], Awaitable[TestServer]]

ADMIN = "U0ADMIN"
USER = "U0USER"
CHANNEL = "C0SHIPPING"
ALERTS = "C0ALERTS"
START = datetime(2026, 3, 2, 8, 0)
ACK_LIMIT = 3.0
ACK_TIMES: list[tuple[str, float]] = []
"""Every acknowledgement measured in this session: (what, seconds)."""


@dataclass
class Answer:
    """The listener's HTTP answer to one signed request, and how long it took."""

    status: int
    text: str
    seconds: float

    def json(self) -> dict[str, Any]:
        import json

        return json.loads(self.text) if self.text else {}


@dataclass
class SlackWorld:
    """Everything a bot test touches."""

    settings: Settings
    service: Service
    sandbox: SandboxState
    slack: SlackStandIn
    url: str
    session: aiohttp.ClientSession
    memory: RecordingChannel
    acks: list[tuple[str, float]] = field(default_factory=list)

    @property
    def events_url(self) -> str:
        return f"{self.url}/slack/events"

    async def post(self, body: str, headers: dict[str, str], what: str) -> Answer:
        """POST ``body`` to ``/slack/events``; the round trip is the acknowledgement time."""
        started = time.perf_counter()
        async with self.session.post(self.events_url, data=body, headers=headers) as response:
            text = await response.text()
        seconds = time.perf_counter() - started
        self.acks.append((what, seconds))
        return Answer(response.status, text, seconds)

    async def command(
        self, text: str, *, user: str = ADMIN, channel: str = CHANNEL
    ) -> tuple[Answer, str]:
        """``/track TEXT`` signed as Slack signs it; returns the ack and its response_url."""
        hook = self.slack.hook_url()
        body = slash_body(text, user=user, channel=channel, response_url=hook)
        return await self.post(body, sign(body), f"/track {text}"), hook

    async def reply(self, answer: Answer, hook: str) -> dict[str, Any]:
        """The answer a person ends up reading: in the ack, or (work that took longer than
        the bot's budget) the post to the response_url that follows it."""
        body = answer.json()
        if str(body.get("text", "")).endswith("I will answer here."):
            return (await self.slack.wait_for_hook(hook)).body
        return body

    async def button(
        self, action_id: str, value: str, *, user: str = ADMIN, channel: str = CHANNEL
    ) -> tuple[Answer, str]:
        """A signed button press; returns the ack and its response_url."""
        hook = self.slack.hook_url()
        payload = button_payload(action_id, value, user=user, channel=channel, response_url=hook)
        body = form(payload)
        return await self.post(body, sign(body), f"button {action_id}"), hook

    async def audit(self, user: str) -> list[tuple[str, str, str]]:
        """(action, target, outcome) recorded for ``slack:USER``, oldest first."""
        page = await self.service.audit(actor=f"slack:{user}", limit=200)
        return [(r.action, r.target, r.outcome) for r in reversed(page.items)]

    def api_requests(self) -> int:
        """How many requests reached the sandbox (17TRACK) so far."""
        return len(self.sandbox.requests)


def slack_settings(base: Settings, slack: SlackStandIn, **overrides: Any) -> Settings:
    """``base`` with ``[slack]`` pointing at the stand-in (HTTP mode unless overridden)."""
    values: dict[str, Any] = {
        "signing_secret": Secret(SIGNING_SECRET),
        "bot_token": Secret(BOT_TOKEN),
        "app_token": Secret(""),
        "admins": (ADMIN,),
        "api_base_url": slack.api_url,
    }
    values.update(overrides)
    return dataclasses.replace(base, slack=SlackBotSettings(**values))


@pytest.fixture(scope="session", autouse=True)
def _slack_bot_entry_point() -> None:
    """The bot is a plugin found through its entry point: an old editable install lacks it."""
    from importlib.metadata import entry_points

    if "slack_bot" not in {ep.name for ep in entry_points(group="trackops")}:
        pytest.fail(
            "the slack_bot plugin's entry point is not installed; run"
            " `.venv/bin/pip install -e '.[test]'` again"
        )


@pytest.fixture
async def slack_standin(serve: Serve) -> SlackStandIn:
    standin = SlackStandIn()
    server = await serve(standin.app)
    standin.base_url = str(server.make_url("")).rstrip("/")
    return standin


@pytest.fixture
def world_factory(tmp_path: Path, slack_standin: SlackStandIn) -> Callable[..., Any]:
    """``async with world_factory(**slack_overrides) as world``: a running bot over the sandbox."""
    import contextlib

    @contextlib.asynccontextmanager
    async def make(
        extra_plugins: tuple[Any, ...] = (), **slack_overrides: Any
    ) -> AsyncIterator[SlackWorld]:
        with contextlib.ExitStack() as stack:
            async for world in _world(stack, extra_plugins, **slack_overrides):
                yield world

    async def _world(
        stack: contextlib.ExitStack, extra_plugins: tuple[Any, ...], **slack_overrides: Any
    ) -> AsyncIterator[SlackWorld]:
        sock = socket.socket()
        stack.callback(sock.close)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        port = sock.getsockname()[1]
        config = SandboxConfig(
            key=KEY,
            webhook_url=f"http://127.0.0.1:{port}/webhooks/17track",
            speed=0.0,
            seed=7,
            rate_limit=10_000.0,
            start_time=START,
        )
        async with running_sandbox(config) as sandbox:
            base = settings_for(tmp_path, base_url=sandbox.base_url)
            base = dataclasses.replace(
                base,
                api=ApiSettings(
                    key=Secret(KEY),
                    base_url=sandbox.base_url,
                    rate_limit=1000.0,
                    timeout=5.0,
                    max_retries=4,
                ),
                webhook=dataclasses.replace(base.webhook, host="127.0.0.1", port=port),
            )
            settings = slack_settings(base, slack_standin, **slack_overrides)
            memory = RecordingChannel("memory")
            async with (
                open_service(
                    settings,
                    clock=sandbox.state.now,
                    channels=[memory],
                    # extra_plugins: test plugins beside the installed ones (slack_bot too)
                    plugins=PluginHost(settings, extra_plugins=extra_plugins)
                    if extra_plugins
                    else None,
                ) as service,
                running(service, sock=sock) as run,
                aiohttp.ClientSession() as session,
            ):
                world = SlackWorld(
                    settings=settings,
                    service=service,
                    sandbox=sandbox.state,
                    slack=slack_standin,
                    url=(run.url or "").rstrip("/"),
                    session=session,
                    memory=memory,
                )
                yield world
                ACK_TIMES.extend(world.acks)
                slow = [(what, round(s, 3)) for what, s in world.acks if s >= ACK_LIMIT]
                assert not slow, f"acknowledged after Slack's {ACK_LIMIT} s: {slow}"

    return make


@pytest.fixture
async def world(world_factory: Callable[..., Any]) -> AsyncIterator[SlackWorld]:
    """The bot in HTTP mode over the sandbox."""
    async with world_factory() as world:
        yield world


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ACK_TIMES:
        return
    seconds = sorted(s for _, s in ACK_TIMES)
    slowest = max(ACK_TIMES, key=lambda item: item[1])
    terminalreporter.write_line(
        f"Slack acks: {len(seconds)} measured, median {seconds[len(seconds) // 2] * 1000:.1f} ms,"
        f" max {slowest[1] * 1000:.1f} ms ({slowest[0]})"
    )


def unquote_form(body: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(body))
