"""The bot's shared rules, without a server: where answers may go, and answering in time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from trackops.bots.app import Reply, SlackBot, valid_channel_id, valid_user_id
from trackops.core.config import SlackBotSettings

API = "http://127.0.0.1:8123/api/"


def bot(budget: float = 1.0) -> SlackBot:
    settings = SlackBotSettings(api_base_url=API, admins=("U0ADMIN",))
    return SlackBot(service=None, settings=settings, ack_budget=budget)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.slack.com/commands/T0/1/abc", True),
        ("https://hooks.slack-gov.com/actions/T0/1/abc", True),
        ("http://hooks.slack.com/commands/T0/1/abc", False),
        ("https://hooks.slack.com.evil.example/commands", False),
        ("https://evil.example/?hooks.slack.com", False),
        ("http://127.0.0.1:8123/hooks/1", True),  # the configured API host (a stand-in)
        ("http://127.0.0.1:8124/hooks/1", False),
        ("http://169.254.169.254/latest/meta-data", False),
        ("javascript:alert(1)", False),
        ("https://hooks.slack.com/" + "x" * 2000, False),
        (None, False),
        (42, False),
    ],
)
def test_answers_only_go_to_slack_or_the_configured_api_host(url: object, allowed: bool) -> None:
    assert bot().response_url_allowed(url) is allowed


@pytest.mark.parametrize(
    ("value", "user", "channel"),
    [
        ("U012ABCDEF", True, False),
        ("W012ABCDEF", True, False),
        ("C012ABCDEF", False, True),
        ("G012ABCDEF", False, True),
        ("D012ABCDEF", False, True),
        ("u012abcdef", False, False),
        ("U012 ABC", False, False),
        ("<@U012ABCDEF>", False, False),
        ("", False, False),
        (None, False, False),
    ],
)
def test_ids(value: object, user: bool, channel: bool) -> None:
    assert (valid_user_id(value) is not None) is user
    assert (valid_channel_id(value) is not None) is channel


def test_admins() -> None:
    assert bot().is_admin("U0ADMIN") and not bot().is_admin("U0USER")
    assert SlackBot.actor("U0USER") == "slack:U0USER"


class Respond:
    response_url = "http://127.0.0.1:8123/hooks/9"

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> None:
        self.posts.append(kwargs)


async def test_fast_work_is_answered_in_the_ack() -> None:
    acks: list[dict[str, Any]] = []

    async def ack(**kwargs: Any) -> None:
        acks.append(kwargs)

    async def work() -> Reply:
        return Reply("done")

    respond = Respond()
    await bot().answer(ack, respond, work(), pending="working")  # type: ignore[arg-type]
    assert acks == [{"text": "done", "response_type": "ephemeral"}]
    assert respond.posts == []


async def test_slow_work_is_acknowledged_first_and_answered_through_response_url() -> None:
    acked = asyncio.Event()
    acks: list[dict[str, Any]] = []

    async def ack(**kwargs: Any) -> None:
        acks.append(kwargs)
        acked.set()

    async def work() -> Reply:
        await acked.wait()  # finishes only once the acknowledgement went out
        return Reply("done late")

    respond = Respond()
    await bot(budget=0.05).answer(ack, respond, work(), pending="working")  # type: ignore[arg-type]
    assert acks == [{"text": "working", "response_type": "ephemeral"}]
    assert respond.posts == [{"text": "done late", "response_type": "ephemeral"}]


async def test_failing_work_is_a_sentence_not_a_traceback() -> None:
    acks: list[dict[str, Any]] = []

    async def ack(**kwargs: Any) -> None:
        acks.append(kwargs)

    async def work() -> Reply:
        raise RuntimeError("secret internals")

    await bot().answer(ack, Respond(), work(), pending="working")  # type: ignore[arg-type]
    assert acks[0]["text"] == ("Something went wrong (RuntimeError); the server log has details.")
