"""``trackops serve`` as a real process answers Slack: ``[slack]`` read from the config file
(secrets through ``env:NAME``), signed requests to ``/slack/events``, the example plugin
(examples/trackops-late-parcels, installed into a temporary folder, never this venv) found
through its entry point, a live alert posted when 17TRACK (the sandbox) pushes an Alert, and
what the process kept in the store once it stopped.

The other tests of the bot run the listener ``serve`` builds inside the test's process
(``trackops.core.runtime.running``); this one checks that the command itself wires it all.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tomli_w
from factories import KEY, free_port, serve_process
from slack_standin import (
    BOT_TOKEN,
    SIGNING_SECRET,
    SlackStandIn,
    sign,
    slash_body,
)
from slack_world import ADMIN, ALERTS, CHANNEL, USER
from trackops.core.channels import RecordingChannel
from trackops.core.config import load_settings
from trackops.core.runtime import open_service
from trackops.core.sandbox import SandboxConfig, ScriptedEvent, running_sandbox
from trackops.core.wire import PackageStatus as S

pytestmark = pytest.mark.usefixtures("late_parcels_installed")

NUMBER = "RR123456785CN"
HOUR = 3600.0
WAIT = 30.0


def write_config(tmp_path: Path, *, port: int, api: str, slack_api: str) -> Path:
    path = tmp_path / "trackops.toml"
    path.write_text(
        tomli_w.dumps(
            {
                "api": {"key": KEY, "base_url": api},
                "store": {"url": f"sqlite:///{tmp_path / 'serve.db'}"},
                "webhook": {"host": "127.0.0.1", "port": port},
                "notifications": {
                    "customer": {"enabled": False, "channels": []},
                    "seller": {"enabled": True, "channels": []},
                },
                "plugins": {"disable": ["email", "slack", "discord"]},
                "slack": {
                    "signing_secret": "env:TRACKOPS_TEST_SLACK_SIGNING_SECRET",
                    "bot_token": "env:TRACKOPS_TEST_SLACK_BOT_TOKEN",
                    "admins": [ADMIN],
                    "api_base_url": slack_api,
                },
            }
        ),
        encoding="utf-8",
    )
    return path


@asynccontextmanager
async def slack_serve(config: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``serve_process`` with the Slack secrets in its environment, then SIGTERM (as systemd
    stops it): it must end with status 0, no traceback and no secret in what it logged."""
    env = {  # PYTHONPATH (from os.environ) holds the example plugin (late_parcels_installed)
        "TRACKOPS_TEST_SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "TRACKOPS_TEST_SLACK_BOT_TOKEN": BOT_TOKEN,
    }
    async with serve_process(config, env=env, start_within=WAIT) as proc:
        yield proc
        proc.send_signal(signal.SIGTERM)
        said = proc.said  # type: ignore[attr-defined]
        assert await asyncio.wait_for(proc.wait(), timeout=WAIT) == 0, bytes(said[-2000:])
    logged = bytes(proc.said)  # type: ignore[attr-defined]
    assert b"Traceback" not in logged, logged[-2000:]
    assert SIGNING_SECRET.encode() not in logged and BOT_TOKEN.encode() not in logged


async def test_serve_answers_slack_with_the_example_plugin_and_posts_alerts(
    tmp_path: Path, slack_standin: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    config = SandboxConfig(
        key=KEY,
        webhook_url=f"http://127.0.0.1:{port}/webhooks/17track",
        speed=0.0,
        seed=7,
        rate_limit=10_000.0,
    )
    async with (
        running_sandbox(config) as sandbox,
        aiohttp.ClientSession() as session,
    ):
        box = sandbox.state
        box.script(
            NUMBER,
            [
                ScriptedEvent(HOUR, S.IN_TRANSIT, description="Accepted", location="Shenzhen"),
                ScriptedEvent(3 * HOUR, S.ALERT, description="Held by customs", location="Köln"),
            ],
            origin_country=301,
            destination_country=1404,
        )  # fmt: skip
        path = write_config(
            tmp_path, port=port, api=sandbox.base_url, slack_api=slack_standin.api_url
        )
        url = f"http://127.0.0.1:{port}/slack/events"

        async def track(text: str, user: str, channel: str = CHANNEL) -> tuple[int, Any, str]:
            hook = slack_standin.hook_url()
            body = slash_body(text, user=user, channel=channel, response_url=hook)
            started = time.perf_counter()
            async with session.post(url, data=body, headers=sign(body)) as response:
                answer = await response.json() if response.status == 200 else {}
                assert time.perf_counter() - started < 3.0, f"/track {text}: ack too slow"
                if str(answer.get("text", "")).endswith("I will answer here."):
                    answer = (await slack_standin.wait_for_hook(hook)).body
                return response.status, answer, hook

        async with slack_serve(path):
            # help: the bot's own commands and the example plugin's, with its name
            status, answer, _ = await track("help", USER)
            shown = str(answer["blocks"])
            assert status == 200 and "/track add NUMBER [CARRIER] [PARAM] [TAG]" in shown
            assert "`/track tag-late NUMBER`: tag a parcel 'late' (plugin late, admins)" in shown

            # a bad signature: 401, nothing else
            body = slash_body("subscribe", user=ADMIN, channel=ALERTS, response_url="")
            headers = sign(body, secret="not-the-signing-secret")
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status == 401

            # an admin registers and subscribes a channel
            status, answer, _ = await track(f"add {NUMBER}", ADMIN)
            assert (status, answer["text"]) == (200, f"{NUMBER} registered.")
            status, answer, _ = await track("subscribe alert", ADMIN, channel=ALERTS)
            assert answer["text"] == "This channel now gets trackops alerts for: Alert."

            # a non-admin: refused by the bot and by the plugin's admins-only subcommand
            before = len(box.requests)
            _, answer, _ = await track(f"stop {NUMBER}", USER)
            assert answer["text"].startswith("Sorry, only trackops admins may stop tracking")
            _, answer, _ = await track(f"tag-late {NUMBER}", USER)
            assert "only trackops admins may run /track tag-late" in answer["text"]
            assert len(box.requests) == before
            # the plugin's subcommand for anyone, and its admins-only one for an admin
            _, answer, _ = await track("late 30", USER)
            assert "No parcel has been silent for 30 days." in str(answer["blocks"])
            _, answer, _ = await track(f"tag-late {NUMBER}", ADMIN)
            assert f"{NUMBER} is tagged late." in str(answer["blocks"])

            # 17TRACK pushes the Alert to serve: the subscribed channel gets it
            box.advance(4 * HOUR)
            (post,) = await slack_standin.wait_for_calls("chat.postMessage")
            assert post.auth == f"Bearer {BOT_TOKEN}" and post.args["channel"] == ALERTS
            assert post.args["text"].startswith(f"Alert: shipment {NUMBER}")
            assert "Held by customs" in str(post.args["blocks"])

    # What serve kept in the store, read after it stopped (the same config file).
    monkeypatch.setenv("TRACKOPS_TEST_SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("TRACKOPS_TEST_SLACK_BOT_TOKEN", BOT_TOKEN)
    settings = load_settings(path)
    async with open_service(
        settings, channels=[RecordingChannel("memory")], load_plugins=False
    ) as service:
        (subscription,) = await service.alert_subscriptions("slack_bot")
        assert (subscription.target, tuple(subscription.statuses)) == (ALERTS, (S.ALERT,))
        shipment = (await service.shipment(NUMBER)).shipment
        assert (shipment.tag, shipment.status, shipment.active) == ("late", S.ALERT, True)
        user = await service.audit(actor=f"slack:{USER}", limit=50)
        assert [(r.action, r.target, r.outcome) for r in reversed(user.items)] == [
            ("help", "", "ok"),
            ("stop", NUMBER, "denied"),
            ("tag-late", NUMBER, "denied"),
            ("late", "30", "ok"),
        ]
        admin = await service.audit(actor=f"slack:{ADMIN}", limit=50)
        done = {(r.action, r.outcome) for r in admin.items}
        assert {("register", "ok"), ("subscribe", "ok"), ("tag-late", "ok"), ("tag", "ok")} <= done
