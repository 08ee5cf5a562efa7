"""kill -9 during dispatch: how many buyers get an email twice, and how soon the rest go out.

A real ``trackops serve`` process sends 300 pending customer emails to a real SMTP server
(aiosmtpd, about 5 ms per message, as a nearby relay answers). It is killed with SIGKILL once a
third have been accepted, then started again. Measured and asserted:

* every notification reaches the SMTP server (none lost);
* duplicates: messages the server accepted twice (sent, not yet recorded as sent, when the
  process died); each carries the same ``Message-ID`` both times, so a mail client shows one;
* time to recover: from the restart until no notification is pending. The dead process's
  claims are released at start-up, so this is seconds, not the 5-minute claim lease.

The figures are printed (``pytest -s``) and quoted in docs/operations.md.
"""

from __future__ import annotations

import asyncio
import email
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from factories import KEY, make_info
from plugin_helpers import free_port
from test_serve import serve_process
from trackops.core.channels import RecordingChannel
from trackops.core.config import load_settings
from trackops.core.engine import Engine, utcnow
from trackops.core.store import NewShipment, Store

SHIPMENTS = 300


@dataclass
class SlowRelay:
    """An SMTP handler that takes a few milliseconds per message and keeps each Message-ID."""

    message_ids: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(0.005)  # the relay's own latency, not a synchronisation
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        self.message_ids.append(email.message_from_bytes(raw)["Message-ID"] or "")
        return "250 Message accepted for delivery"


def write_config(tmp_path: Path, port: int, smtp_port: int) -> Path:
    path = tmp_path / "trackops.toml"
    path.write_text(
        tomli_w.dumps(
            {
                "api": {"key": KEY, "base_url": "http://127.0.0.1:9/track/v1"},
                "store": {"url": f"sqlite:///{tmp_path / 'serve.db'}"},
                "webhook": {"host": "127.0.0.1", "port": port},
                "notifications": {
                    "customer": {"enabled": True, "channels": ["email"]},
                    "seller": {"enabled": False, "channels": []},
                },
                "channels": {
                    "email": {"host": "127.0.0.1", "port": smtp_port, "sender": "shop@example.com"}
                },
                "plugins": {"disable": ["slack", "discord"]},
            }
        ),
        encoding="utf-8",
    )
    return path


async def queue_notifications(config: Path) -> None:
    """SHIPMENTS shipments whose first sync is In transit: one pending customer email each."""
    settings = load_settings(config)
    numbers = [f"RR{n:09d}CN" for n in range(SHIPMENTS)]
    async with Engine(settings, channels=[RecordingChannel("email")], load_plugins=False) as engine:
        await engine.store.add_shipments(
            [NewShipment(number=n, email=f"buyer{i}@example.com") for i, n in enumerate(numbers)]
        )
        now = utcnow()
        await engine.apply_track_infos([(n, make_info(10, now)) for n in numbers])
        pending = await engine.store.history(send_status="pending")
        assert len(pending) == SHIPMENTS


async def pending_count(store: Store) -> int:
    return len(await store.history(send_status="pending"))


async def test_kill_9_during_dispatch_duplicates_and_time_to_recover(tmp_path: Path) -> None:
    relay = SlowRelay()
    smtp_port = free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=smtp_port, ready_timeout=5)
    controller.start()
    try:
        config = write_config(tmp_path, free_port(), smtp_port)
        await queue_notifications(config)
        async with serve_process(config) as proc:
            deadline = time.monotonic() + 60
            while len(relay.message_ids) < SHIPMENTS // 3:
                assert time.monotonic() < deadline, "dispatch did not start"
                await asyncio.sleep(0.002)
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
        accepted_before = len(relay.message_ids)
        store = await Store.open(load_settings(config).store.url)
        try:
            pending_at_restart = await pending_count(store)
            restarted = time.monotonic()
            async with serve_process(config) as proc:
                deadline = restarted + 60
                while await pending_count(store) > 0:
                    assert time.monotonic() < deadline, "pending notifications left after 60 s"
                    await asyncio.sleep(0.05)
                recovered = time.monotonic() - restarted
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), timeout=20)
            sent = await store.history(send_status="sent")
        finally:
            await store.close()
    finally:
        controller.stop()

    unique = set(relay.message_ids)
    duplicates = len(relay.message_ids) - len(unique)
    print(
        f"\nkill -9 during dispatch of {SHIPMENTS} emails: {accepted_before} accepted before "
        f"the kill, {pending_at_restart} pending at restart, {duplicates} sent twice, "
        f"all sent {recovered:.2f} s after the restart"
    )
    assert len(sent) == SHIPMENTS
    assert len(unique) == SHIPMENTS, "every notification reached the SMTP server, once or more"
    assert all(mid.startswith("<trackops.") for mid in unique)  # stable, per history row
    # At most what was in flight: the dispatcher sends 8 at a time.
    assert duplicates <= 8, f"{duplicates} emails sent twice"
    assert recovered < 30, f"took {recovered:.1f} s: the dead process's claims were not released"
