"""The Slack bot's world: the sandbox (17TRACK), the listener as ``trackops serve`` builds it
(``trackops.core.runtime``), and a local stand-in for Slack's cloud that records every call.

``world_factory`` starts them all (``world``: with the default settings); ``SlackWorld.post``
(tests/slack_world.py) sends a signed request to the listener's ``/slack/events`` and measures
the acknowledgement; every acknowledgement of a test is checked to be within Slack's 3 seconds
when the test ends (and the figures are printed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from factories import KEY, settings_for
from slack_standin import SlackStandIn
from slack_world import ACK_LIMIT, ACK_TIMES, START, Serve, SlackWorld, slack_settings
from trackops.core.channels import RecordingChannel
from trackops.core.config import ApiSettings, Secret
from trackops.core.plugins import PluginHost
from trackops.core.runtime import open_service, running
from trackops.core.sandbox import SandboxConfig, running_sandbox


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
