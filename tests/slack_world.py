"""What the Slack bot's tests share (tests/bots/conftest.py has the fixtures): the users and
channels of the test workspace, ``SlackWorld`` (the running bot over the sandbox, with Slack's
cloud a local stand-in) and ``slack_settings``.

A module of its own, not the conftest: ``from conftest import ...`` finds whichever
``conftest`` pytest imported first, which is another folder's when several run together.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
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
from trackops.core.config import Secret, Settings, SlackBotSettings
from trackops.core.sandbox import SandboxState
from trackops.core.service import Service

__all__ = [
    "ACK_LIMIT",
    "ACK_TIMES",
    "ADMIN",
    "ALERTS",
    "CHANNEL",
    "START",
    "USER",
    "Answer",
    "Serve",
    "SlackWorld",
    "slack_settings",
]

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
