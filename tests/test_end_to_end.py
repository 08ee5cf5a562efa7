"""End to end: 17TRACK's pushes in, the right emails, Slack and Discord messages out.

Everything is real except the far ends, which are local: the sandbox (17TRACK, in-process,
clock frozen at ``START`` and moved only by ``advance()``) pushes signed webhooks to the
listener (``create_app`` with its background inbox processor and dispatcher), the engine
(``Engine(settings)``, plugins loaded through their entry points, including the separately
installed example plugin) decides and sends through the built-in channels to an aiosmtpd
server, a Slack incoming-webhook stand-in and a Discord webhook stand-in, and through the
example plugin's ``webhook`` channel to a local receiver. Settings come from a TOML file read
by ``load_settings``; ``trackops --config FILE history`` reads the same SQLite file.

Three parcels, each In transit -> (Pick up | Alert | Undelivered) -> Delivered; the third
buyer's address is refused by the SMTP server with 550. Waits are bounded and driven by the
engine's change stream or the sandbox's push log, never by sleeping.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import socket
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import tomli_w
from aiohttp import web
from aiohttp.test_utils import TestServer
from plugin_helpers import FakeDiscord, FakeSlack, SmtpServer
from trackops.core.config import load_settings
from trackops.core.engine import Change, Engine, RegisterRequest
from trackops.core.sandbox import (
    SandboxConfig,
    SandboxState,
    ScriptedEvent,
    render_track,
    running_sandbox,
    signed_push,
)
from trackops.core.service import Service
from trackops.core.store import NotificationRecord
from trackops.core.webhook import STATS, create_app
from trackops.core.wire import EVENT_TRACKING_UPDATED, NumberItem
from trackops.core.wire import PackageStatus as S
from trackops.plugins.discord import STATUS_COLOURS

Serve = Callable[[web.Application], Awaitable[TestServer]]

KEY = "e2e-key-7c41a9d2"
START = datetime(2026, 3, 2, 8, 0)
HOUR = 3600.0
SELLER = "ops@shop.example"
SENDER = "Shop <shop@example.com>"
HOOK_SECRET = "hook-secret-0f3e"
REFUSAL = "550 5.1.1 no such user"
TRACKING_URL = "https://t.17track.net/en#nums={}"
CHINA, NETHERLANDS = 301, 1404
WAIT = 10.0  # seconds: the bound of every wait (the whole test takes a few)
TRACKOPS = Path(sys.executable).with_name("trackops")


@dataclass(frozen=True)
class Parcel:
    number: str
    order: str
    buyer: str
    name: str
    middle: S  # the status between In transit and Delivered
    middle_event: str

    @property
    def url(self) -> str:
        return TRACKING_URL.format(self.number)


ADA = Parcel("RR123456785CN", "1001", "ada@example.com", "Ada Buyer", S.PICK_UP, "With courier")
BO = Parcel("LX987654321CN", "1002", "bo@example.com", "Bo Buyer", S.ALERT, "Held by customs")
CY = Parcel("CP555666777CN", "1003", "cy@example.com", "Cy Buyer", S.UNDELIVERED, "Nobody home")
PARCELS = (ADA, BO, CY)

# The story, stage by stage: simulated hours after registration -> (status, event text).
TRANSIT_EVENT = "Accepted at the post office"
DELIVERED_EVENT = "Delivered to the front door"

CUSTOMER_SUBJECTS = {
    S.IN_TRANSIT: "Your order {} is on its way",
    S.PICK_UP: "Your order {} is out for delivery",
    S.ALERT: "There is a problem with the delivery of your order {}",
    S.UNDELIVERED: "Your order {} could not be delivered",
    S.DELIVERED: "Your order {} has been delivered",
}
SELLER_SUBJECTS = {
    S.ALERT: "Alert: shipment {} (order {}) needs attention",
    S.UNDELIVERED: "Undelivered: shipment {} (order {}) could not be delivered",
}


def script(state: SandboxState, parcel: Parcel) -> None:
    def step(hours: float, status: S, text: str) -> ScriptedEvent:
        return ScriptedEvent(after=hours * HOUR, status=status, description=text, location="Köln")

    state.script(
        parcel.number,
        [
            step(1, S.IN_TRANSIT, TRANSIT_EVENT),
            step(24, parcel.middle, parcel.middle_event),
            step(30, S.DELIVERED, DELIVERED_EVENT),
        ],
        origin_country=CHINA,
        destination_country=NETHERLANDS,
    )


def write_config(
    path: Path, *, api: str, listener_port: int, smtp: int, slack: str, discord: str, hook: str
) -> Path:
    config = {
        "api": {"key": KEY, "base_url": api, "rate_limit": 1000.0, "timeout": 10},
        "store": {"url": f"sqlite:///{path.parent / 'trackops.db'}"},
        "webhook": {"host": "127.0.0.1", "port": listener_port, "path": "/webhooks/17track"},
        "notifications": {
            "customer": {"enabled": True, "channels": ["email"]},
            "seller": {"email": SELLER, "channels": ["email", "slack", "discord"]},
            "conditions": [
                {"name": "delivered-hook", "to": ["delivered"], "channels": ["webhook"]},
            ],
        },
        "channels": {
            "email": {"host": "127.0.0.1", "port": smtp, "sender": SENDER, "timeout": 10},
            "slack": {"webhook_url": slack},
            "discord": {"webhook_url": discord},
            "webhook": {"url": hook, "secret": HOOK_SECRET, "timeout": 10},
        },
    }
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    return path


class HookReceiver:
    """The example plugin's far end: records each POST (headers, raw body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.app = web.Application()
        self.app.router.add_post("/hooks/trackops", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append((dict(request.headers), await request.read()))
        return web.Response(status=204)


async def settle(
    engine: Engine, changes: asyncio.Queue[Change], count: int
) -> list[NotificationRecord]:
    """Wait until the history holds ``count`` rows and none is pending (woken by the engine's
    change stream, which announces every new row and every send), at most ``WAIT`` seconds."""
    rows: list[NotificationRecord] = []
    try:
        async with asyncio.timeout(WAIT):
            while True:
                rows = await engine.store.history()
                if len(rows) >= count and all(r.send_status != "pending" for r in rows):
                    break
                await changes.get()
    except TimeoutError:
        seen = [(r.number, r.channel, r.condition, r.send_status, r.reason) for r in rows]
        raise AssertionError(f"expected {count} settled rows within {WAIT} s, got {seen}") from None
    assert len(rows) == count, [(r.number, r.channel, r.condition) for r in rows]
    return rows


async def trackops(config: Path, *args: str) -> str:
    """``trackops --config FILE ARGS`` as a user runs it (the console script); its stdout."""
    proc = await asyncio.create_subprocess_exec(
        str(TRACKOPS),
        "--config",
        str(config),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


def parsed(raw: bytes | None) -> EmailMessage:
    assert raw is not None
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def subject(message: EmailMessage) -> str:
    """The Subject as a mail client shows it: a long one is folded, which may put the whole
    value on a continuation line (Python's folding; the leading space is not part of it)."""
    return " ".join(str(message["Subject"]).split())


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None, message
    return text.get_content(), html.get_content()


def row_key(row: NotificationRecord | dict[str, Any]) -> tuple[Any, ...]:
    if isinstance(row, NotificationRecord):
        row = row.to_json()
    return (
        row["number"],
        row["channel"],
        row["recipient"],
        row["condition"],
        row["to_status"],
    )


async def test_a_parcels_journey_notifies_buyers_seller_and_plugins_exactly_once(
    tmp_path: Path,
    smtp_server: SmtpServer,
    serve: Serve,
    listener_socket: socket.socket,
    example_installed: Path,
) -> None:
    smtp_server.recorder.refuse[CY.buyer] = REFUSAL
    slack, discord, receiver = FakeSlack(), FakeDiscord(), HookReceiver()
    slack_server, discord_server, hook_server = [
        await serve(app) for app in (slack.app, discord.app, receiver.app)
    ]
    port = listener_socket.getsockname()[1]
    listener_url = f"http://127.0.0.1:{port}/webhooks/17track"
    sandbox_config = SandboxConfig(
        key=KEY,
        webhook_url=listener_url,
        speed=0.0,
        seed=3,
        rate_limit=10_000.0,
        start_time=START,
    )
    async with running_sandbox(sandbox_config) as sandbox:
        state = sandbox.state
        for parcel in PARCELS:
            script(state, parcel)
        config = write_config(
            tmp_path / "trackops.toml",
            api=sandbox.base_url,
            listener_port=port,
            smtp=smtp_server.port,
            slack=str(slack_server.make_url("/services/T0/B0/ok")),
            discord=str(discord_server.make_url("/api/webhooks/1/secret-token")),
            hook=str(hook_server.make_url("/hooks/trackops")),
        )
        settings = load_settings(config)
        async with Engine(settings, clock=state.now) as engine:
            # Real plugins, found through their entry points; the example one included.
            assert {"email", "slack", "discord", "webhook"} <= set(engine.channels)
            assert engine.plugins.provider_of("channel", "webhook") == "webhook"
            app = create_app(settings, Service(engine))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            try:
                await web.SockSite(runner, listener_socket).start()
                async with engine.subscribe() as changes:
                    await journey(engine, changes, state, listener_url)
                    # 9 pushes of news, 6 repeated by /push and 1 late one: all stored.
                    assert app[STATS].accepted == 16 and app[STATS].rejected == 0
                    rows = await settle(engine, changes, 18)
                    await check_history_command(config, rows)
            finally:
                await runner.cleanup()

    check_rows(rows)
    check_emails(smtp_server, rows)
    check_slack(slack, rows)
    check_discord(discord, rows)
    check_plugin_webhook(receiver, rows)


async def journey(
    engine: Engine, changes: asyncio.Queue[Change], state: SandboxState, listener_url: str
) -> None:
    """Register, then move simulated time through the three stages; repeat pushes at the end."""
    outcome = await engine.register(
        [RegisterRequest(p.number, order=p.order, email=p.buyer, name=p.name) for p in PARCELS]
    )
    assert outcome.ok, outcome.rejected
    assert sorted(outcome.accepted) == sorted(p.number for p in PARCELS)

    # Stage 1 (+2 h): In transit. One email per buyer (the third one refused).
    state.advance(2 * HOUR)
    await settle(engine, changes, 3)
    # Stage 2 (+26 h): Pick up / Alert / Undelivered. Buyers again, and the seller for two of
    # them on email, Slack and Discord.
    state.advance(24 * HOUR)
    await settle(engine, changes, 3 + 3 + 2 * 3)
    # Stage 3 (+32 h): Delivered. Buyers, and the custom condition through the example plugin.
    state.advance(6 * HOUR)
    await settle(engine, changes, 12 + 3 + 3)
    assert all(p.ok for p in state.pushes) and len(state.pushes) == 9

    # Pushes repeat: 17TRACK pushes the same information again (/push), and an old push
    # arrives late. Neither may send anything again nor move a parcel back.
    client = await engine.client()
    for _ in range(2):
        result = await client.push([NumberItem(p.number) for p in PARCELS])
        assert not result.rejected, result.rejected
    pushes = await state.wait_for_pushes(15, seconds=WAIT)
    assert all(p.ok for p in pushes)
    registration = state.tracked(ADA.number)
    assert registration is not None
    old_track = render_track(registration, START + timedelta(hours=2))
    assert old_track is not None and old_track["e"] == int(S.IN_TRANSIT)
    late = signed_push(
        EVENT_TRACKING_UPDATED, {"number": ADA.number, "tag": ADA.order, "track": old_track}, KEY
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(listener_url, data=late, headers={"Content-Type": "application/json"}) as r,
    ):
        assert r.status == 200, await r.text()
    # Acknowledged means stored: processing the inbox (under the engine's inbox lock, so also
    # after any run the background processor has begun) applies every repeated push.
    await engine.process_inbox()
    assert (await engine.store.inbox_stats()).backlog == 0
    await engine.dispatch_pending()
    for parcel in PARCELS:
        record = await engine.store.get_shipment(parcel.number)
        assert record is not None and record.status is S.DELIVERED, parcel
        # The push that delivered it, stamped with the engine's (simulated) clock.
        assert record.last_push_at == START + timedelta(hours=32), record


async def check_history_command(config: Path, rows: list[NotificationRecord]) -> None:
    """``trackops history`` (JSON, a filter, the table) lists every row as the store has it."""
    listed, failed, table = await asyncio.gather(
        trackops(config, "history", "--json"),
        trackops(config, "history", "--json", "--send-status", "failed"),
        trackops(config, "history"),
    )
    listed_rows = json.loads(listed)
    assert [r["id"] for r in listed_rows] == [r.id for r in rows]
    assert listed_rows == [r.to_json() for r in rows]
    for row in listed_rows:
        assert row["condition"] in ("customer", "seller", "delivered-hook"), row
        custom = row["condition"] == "delivered-hook"
        assert row["condition_kind"] == ("custom" if custom else "default"), row
        if row["recipient"] == CY.buyer:
            assert row["send_status"] == "failed", row
            assert REFUSAL in row["reason"], row
        else:
            assert (row["send_status"], row["reason"]) == ("sent", None), row
    failed_rows = json.loads(failed)
    assert {r["recipient"] for r in failed_rows} == {CY.buyer} and len(failed_rows) == 3

    lines = table.splitlines()
    header, body = lines[0].split(), lines[1:]
    assert header[:3] == ["id", "time", "number"] and "condition" in header, header
    assert len(body) == len(rows)
    for row, line in zip(rows, body, strict=True):
        assert line.split()[0] == str(row.id), line
        condition = "delivered-hook (custom)" if row.condition_kind == "custom" else row.condition
        assert condition in line and row.send_status in line, line
        if row.send_status == "failed":
            assert REFUSAL in line, line


def check_rows(rows: list[NotificationRecord]) -> None:
    """Exactly the expected notifications, each once; sent except the refused buyer's."""
    expected: Counter[tuple[Any, ...]] = Counter()
    for p in PARCELS:
        for status in (S.IN_TRANSIT, p.middle, S.DELIVERED):
            expected[(p.number, "email", p.buyer, "customer", status.slug)] += 1
        if p.middle in (S.ALERT, S.UNDELIVERED):
            for channel in ("email", "slack", "discord"):
                expected[(p.number, channel, SELLER, "seller", p.middle.slug)] += 1
        expected[(p.number, "webhook", SELLER, "delivered-hook", "delivered")] += 1
    assert Counter(row_key(r) for r in rows) == expected
    by_number = {p.number: p for p in PARCELS}
    for row in rows:
        parcel = by_number[row.number or ""]
        assert row.order_number == parcel.order
        assert row.audience == ("customer" if row.condition == "customer" else "seller")
        previous = {S.IN_TRANSIT: S.NOT_FOUND, S.DELIVERED: parcel.middle}
        assert row.from_status is previous.get(row.to_status, S.IN_TRANSIT), row
        if row.recipient == CY.buyer:
            assert row.send_status == "failed" and row.reason is not None, row
            assert REFUSAL in row.reason and row.attempts == 1, row  # final at once: a 5xx
        else:
            assert row.send_status == "sent" and row.reason is None, row


def check_emails(smtp: SmtpServer, rows: list[NotificationRecord]) -> None:
    """One email per sent email row (matched by its notification id), worded for its reader."""
    email_rows = {r.id: r for r in rows if r.channel == "email" and r.send_status == "sent"}
    envelopes = smtp.recorder.envelopes
    by_id: dict[int, EmailMessage] = {}
    for envelope in envelopes:
        message = parsed(envelope.original_content)
        row_id = int(message["X-Trackops-Notification"])
        assert row_id not in by_id, f"notification {row_id} emailed twice"
        by_id[row_id] = message
        row = email_rows[row_id]
        assert envelope.rcpt_tos == [row.recipient]
    assert sorted(by_id) == sorted(email_rows)
    assert CY.buyer not in {a for e in envelopes for a in e.rcpt_tos}

    by_number = {p.number: p for p in PARCELS}
    events = {S.IN_TRANSIT: TRANSIT_EVENT, S.DELIVERED: DELIVERED_EVENT}
    for row_id, message in by_id.items():
        row = email_rows[row_id]
        parcel = by_number[row.number or ""]
        assert row.to_status is not None
        event = events.get(row.to_status, parcel.middle_event)
        assert message["From"] == SENDER
        text, html = text_and_html(message)
        if row.audience == "customer":
            wanted = CUSTOMER_SUBJECTS[row.to_status].format(parcel.order)
            assert message["To"] == f"{parcel.name} <{parcel.buyer}>"
        else:
            wanted = SELLER_SUBJECTS[row.to_status].format(parcel.number, parcel.order)
            assert message["To"] == SELLER
            assert f"{row.from_status.display} -> {row.to_status.display}" in text  # type: ignore[union-attr]
            assert "Condition: seller (default)" in text
        assert subject(message) == wanted
        for body in (text, html):
            assert parcel.order in body and parcel.url in body, body
            assert event in body and "China Post" in body, body
        assert "<h1" in html and "<h1" not in text
    customer_subjects = Counter(
        subject(m) for i, m in by_id.items() if email_rows[i].audience == "customer"
    )
    assert customer_subjects == Counter(
        CUSTOMER_SUBJECTS[status].format(p.order)
        for p in (ADA, BO)
        for status in (S.IN_TRANSIT, p.middle, S.DELIVERED)
    )


def check_slack(slack: FakeSlack, rows: list[NotificationRecord]) -> None:
    """Block Kit for the seller's two alerts, posted to the incoming webhook once each."""
    assert len(slack.webhook_posts) == len([r for r in rows if r.channel == "slack"]) == 2
    posted = {post["blocks"][0]["text"]["text"]: post for post in slack.webhook_posts}
    for parcel in (BO, CY):
        title = SELLER_SUBJECTS[parcel.middle].format(parcel.number, parcel.order)
        post = posted[title]
        assert post["text"] == title
        header, section, context = post["blocks"]
        assert header == {"type": "header", "text": {"type": "plain_text", "text": title}}
        assert section["type"] == "section"
        assert section["text"]["text"] == f"Tracking number <{parcel.url}|{parcel.number}>"
        fields = [f["text"] for f in section["fields"]]
        assert f"*Status*\nIn transit → {parcel.middle.display}" in fields
        assert f"*Order*\n{parcel.order}" in fields
        assert "*Carrier*\nChina Post" in fields
        assert "*Route*\nChina → Netherlands" in fields
        assert any(f.startswith("*Latest event*\n") and parcel.middle_event in f for f in fields)
        assert context["elements"][0]["text"] == "seller (default) · trackops"


def check_discord(discord: FakeDiscord, rows: list[NotificationRecord]) -> None:
    """One embed per seller alert, mentions disabled."""
    assert len(discord.calls) == len([r for r in rows if r.channel == "discord"]) == 2
    embeds = {}
    for _, payload in discord.calls:
        assert payload["allowed_mentions"] == {"parse": []}
        (embed,) = payload["embeds"]
        embeds[embed["title"]] = embed
    for parcel in (BO, CY):
        embed = embeds[SELLER_SUBJECTS[parcel.middle].format(parcel.number, parcel.order)]
        assert embed["url"] == parcel.url
        assert embed["color"] == STATUS_COLOURS[parcel.middle]
        assert embed["timestamp"] == "2026-03-03T08:00:00Z"  # the event, 24 h after START
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert fields["Status"] == f"In transit → {parcel.middle.display}"
        assert fields["Order"] == parcel.order
        assert fields["Tracking number"] == parcel.number
        assert fields["Route"] == "China → Netherlands"
        assert parcel.middle_event in fields["Latest event"]
        assert embed["footer"]["text"] == "seller (default) · trackops"


def check_plugin_webhook(receiver: HookReceiver, rows: list[NotificationRecord]) -> None:
    """The custom condition's notifications, delivered by the example plugin, signed."""
    from trackops_webhook_notifier import SIGNATURE_HEADER, sign

    hook_rows = {r.id: r for r in rows if r.channel == "webhook"}
    assert len(receiver.posts) == len(hook_rows) == 3
    seen = set()
    for headers, body in receiver.posts:
        assert headers[SIGNATURE_HEADER] == sign(HOOK_SECRET, body)
        data = json.loads(body)
        row = hook_rows[data["notification_id"]]
        seen.add(row.id)
        parcel = next(p for p in PARCELS if p.number == row.number)
        assert data["number"] == parcel.number and data["order"] == parcel.order
        assert (data["condition"], data["condition_kind"]) == ("delivered-hook", "custom")
        assert (data["from_status"], data["to_status"]) == (parcel.middle.slug, "delivered")
        assert (data["audience"], data["recipient"]) == ("seller", SELLER)
        assert data["tracking_url"] == parcel.url
        assert data["latest_event"]["description"] == DELIVERED_EVENT
    assert seen == set(hook_rows)
