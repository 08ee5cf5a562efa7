"""A local stand-in for Slack's cloud, for the bot's tests (the one far end we may mock).

One aiohttp app answers what the bot calls, the way Slack does, and records every call:

* Web API under ``/api/``: ``auth.test``, ``chat.postMessage``, ``chat.postEphemeral``,
  ``views.open`` (bot token) and ``apps.connections.open`` (app token), which answers the
  ``ws://`` URL of this server's Socket Mode WebSocket. Answers can be queued per method
  (``queue``) to play Slack's 429 or its refusals.
* ``response_url`` hooks under ``/hooks/`` (``hook_url()`` makes one per request).
* ``/socket``: Socket Mode. ``send_envelope`` sends one envelope to the connected client and
  returns the acknowledgement and how long it took.

Plus ``signed_request``: a body and headers signed with a signing secret exactly as Slack
signs them (``v0=`` HMAC-SHA256 of ``v0:TIMESTAMP:BODY``), computed here, not by slack_sdk.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-17-standin-bot-token-4f9a"
APP_TOKEN = "xapp-1-standin-app-token-77c2"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0TRACKOPS"
WAIT = 10.0


@dataclass
class Call:
    """One Web API call: method, Authorization header, arguments, monotonic time."""

    method: str
    auth: str
    args: dict[str, Any]
    at: float


@dataclass
class HookPost:
    """One post to a response_url: its hook id and the JSON body."""

    hook: str
    body: dict[str, Any]
    at: float


@dataclass
class Ack:
    """A Socket Mode acknowledgement and the seconds it took."""

    envelope_id: str
    payload: dict[str, Any] | None
    seconds: float


@dataclass
class SlackStandIn:
    """Slack's Web API, response_url hooks and Socket Mode, on loopback."""

    calls: list[Call] = field(default_factory=list)
    hooks: list[HookPost] = field(default_factory=list)
    queue: dict[str, list[tuple[int, dict[str, Any], dict[str, str]]]] = field(default_factory=dict)
    base_url: str = ""
    channels: set[str] = field(default_factory=lambda: {"C0ALERTS", "C0SHIPPING", "C0OTHER"})

    def __post_init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_post("/api/{method}", self.api)
        self.app.router.add_post("/hooks/{hook}", self.hook)
        self.app.router.add_get("/socket", self.socket)
        self._changed = asyncio.Condition()
        self._ids = itertools.count(1)
        self._socket: web.WebSocketResponse | None = None
        self._socket_ready = asyncio.Event()
        self._acks: dict[str, asyncio.Future[Ack]] = {}

    # ------------------------------------------------------------------ helpers for tests

    @property
    def api_url(self) -> str:
        """What ``[slack] api_base_url`` is set to."""
        return f"{self.base_url}/api/"

    def hook_url(self) -> str:
        """A fresh response_url."""
        return f"{self.base_url}/hooks/{next(self._ids)}"

    def calls_to(self, method: str) -> list[Call]:
        """The calls of ``method`` so far."""
        return [c for c in self.calls if c.method == method]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_calls(self, method: str, count: int = 1) -> list[Call]:
        """The first ``count`` calls of ``method``, waiting for them at most ``WAIT`` s."""
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(lambda: len(self.calls_to(method)) >= count)
        return self.calls_to(method)[:count]

    async def wait_for_hook(self, hook_url: str) -> HookPost:
        """The first post to ``hook_url`` (at most ``WAIT`` s)."""
        hook = hook_url.rsplit("/", 1)[1]

        def found() -> HookPost | None:
            return next((h for h in self.hooks if h.hook == hook), None)

        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(lambda: found() is not None)
        post = found()
        assert post is not None
        return post

    def posts_to(self, hook_url: str) -> list[HookPost]:
        """Every post to ``hook_url`` so far."""
        hook = hook_url.rsplit("/", 1)[1]
        return [h for h in self.hooks if h.hook == hook]

    # ------------------------------------------------------------------ Web API

    async def api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.content_type == "application/json":
            args = await request.json()
        else:
            args = dict(await request.post())
            if isinstance(args.get("blocks"), str):
                args["blocks"] = json.loads(args["blocks"])
            if isinstance(args.get("view"), str):
                args["view"] = json.loads(args["view"])
        auth = request.headers.get("Authorization", "")
        self.calls.append(Call(method, auth, args, time.monotonic()))
        await self._notify()
        queued = self.queue.get(method)
        if queued:
            status, body, headers = queued.pop(0)
            return web.json_response(body, status=status, headers=headers)
        wanted = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if auth != f"Bearer {wanted}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return web.json_response(self._answer(method, args))

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "team_id": TEAM, "user_id": "U0BOT", "bot_id": "B0BOT"}
        if method == "apps.connections.open":
            return {"ok": True, "url": self.base_url.replace("http", "ws", 1) + "/socket"}
        if method in {"chat.postMessage", "chat.postEphemeral"}:
            if args.get("channel") not in self.channels:
                return {"ok": False, "error": "channel_not_found"}
            return {"ok": True, "channel": args["channel"], "ts": f"1700000000.{len(self.calls)}"}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V0MODAL", **args.get("view", {})}}
        return {"ok": False, "error": "unknown_method"}

    async def hook(self, request: web.Request) -> web.Response:
        self.hooks.append(
            HookPost(request.match_info["hook"], await request.json(), time.monotonic())
        )
        await self._notify()
        return web.Response(text="ok")

    # ------------------------------------------------------------------ Socket Mode

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._socket = ws
        await ws.send_json({"type": "hello", "num_connections": 1})
        self._socket_ready.set()
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            future = self._acks.pop(str(data.get("envelope_id")), None)
            if future is not None and not future.done():
                started = future.started  # type: ignore[attr-defined]
                future.set_result(
                    Ack(data["envelope_id"], data.get("payload"), time.monotonic() - started)
                )
        return ws

    async def wait_for_socket(self) -> None:
        """Until the bot's Socket Mode client is connected (at most ``WAIT`` s)."""
        async with asyncio.timeout(WAIT):
            await self._socket_ready.wait()

    async def send_envelope(self, kind: str, payload: dict[str, Any]) -> Ack:
        """Send one envelope (``slash_commands``, ``interactive``) and wait for its ack."""
        await self.wait_for_socket()
        assert self._socket is not None
        envelope_id = f"env-{next(self._ids)}"
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        future.started = time.monotonic()  # type: ignore[attr-defined]
        self._acks[envelope_id] = future
        await self._socket.send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "accepts_response_payload": kind != "events_api",
                "payload": payload,
            }
        )
        async with asyncio.timeout(WAIT):
            return await future


# --------------------------------------------------------------------------- signed requests


def sign(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """Slack's request headers for ``body``: timestamp and ``v0=`` signature."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = f"v0:{ts}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def slash_body(text: str, *, user: str, channel: str, response_url: str, trigger: str = "") -> str:
    """A ``/track`` slash command's form body, as Slack posts it."""
    return urllib.parse.urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "team_domain": "trackops-test",
            "channel_id": channel,
            "channel_name": "shipping",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/track",
            "text": text,
            "api_app_id": "A0TRACKOPS",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger or f"1337.42.{user}",
        }
    )


def slash_payload(text: str, *, user: str, channel: str, response_url: str) -> dict[str, Any]:
    """The same slash command as Socket Mode delivers it (a dict)."""
    return dict(
        urllib.parse.parse_qsl(
            slash_body(text, user=user, channel=channel, response_url=response_url)
        )
    )


def button_payload(
    action_id: str, value: str, *, user: str, channel: str, response_url: str
) -> dict[str, Any]:
    """A ``block_actions`` payload for one button press."""
    return {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "trackops-test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": "A0TRACKOPS",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": channel},
        "trigger_id": f"1337.43.{user}",
        "channel": {"id": channel, "name": "shipping"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "shipment",
                "value": value,
                "type": "button",
                "action_ts": "1700000001.000200",
            }
        ],
    }


def view_payload(
    callback_id: str, metadata: str, values: dict[str, Any], *, user: str
) -> dict[str, Any]:
    """A ``view_submission`` payload for a modal."""
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "trackops-test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": "A0TRACKOPS",
        "token": "legacy-verification-token",
        "trigger_id": f"1337.44.{user}",
        "view": {
            "id": "V0MODAL",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": metadata,
            "state": {"values": values},
        },
    }


def form(payload: dict[str, Any]) -> str:
    """An interaction's form body: ``payload=<json>``."""
    return urllib.parse.urlencode({"payload": json.dumps(payload)})
