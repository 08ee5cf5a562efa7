"""Secrets are masked by their shape in logs and in the history, even when malformed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from factories import BASE, days, make_info, settings_for
from trackops.core.engine import Engine
from trackops.core.redact import install_log_redaction, redact
from trackops.core.store import NewShipment
from trackops.plugins.discord import DiscordChannel

TOKEN = "Zx9_tok-3nSecret"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            f"POST https://discord.com/api/webhooks/1234567/{TOKEN} failed",
            "POST https://discord.com/api/webhooks/1234567/*** failed",
        ),
        (  # a space inside the token: the glued word goes too
            f"url https://discord.com/api/webhooks/1234567/{TOKEN} 2nd-half: 404",
            "url https://discord.com/api/webhooks/1234567/***: 404",
        ),
        (  # written as a TOML table, printed as a dict
            f"{{'url': 'https://discordapp.com/api/webhooks/99/{TOKEN}'}}",
            "{'url': 'https://discordapp.com/api/webhooks/99/***'}",
        ),
        (
            f"https://hooks.slack.com/services/T0001/B0002/{TOKEN}",
            "https://hooks.slack.com/services/***",
        ),
        (f"token xoxb-1234-5678-{TOKEN} refused", "token xoxb-*** refused"),
        (f"xapp-1-A0-{TOKEN}", "xapp-***"),
        (
            f"postgresql://shop:{TOKEN}@db.internal/trackops",
            "postgresql://shop:***@db.internal/trackops",
        ),
        (f"smtp://mailer:{TOKEN}@mail:25", "smtp://mailer:***@mail:25"),
        (
            f"https://x.example/hook?a=1&token={TOKEN}&b=2",
            "https://x.example/hook?a=1&token=***&b=2",
        ),
        (f"GET /v1?api_key={TOKEN}", "GET /v1?api_key=***"),
        (f"Authorization: Bearer {TOKEN}", "Authorization: Bearer ***"),
        (f"headers {{'17token': '{TOKEN}'}}", "headers {'17token': '***'}"),
        ("nothing secret: RR123456789CN delivered", "nothing secret: RR123456789CN delivered"),
    ],
)
def test_redact(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert TOKEN not in redact(text)


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    log = logging.getLogger("trackops.test_redact")
    with caplog.at_level(logging.INFO):
        log.warning("sending to %s", f"https://discord.com/api/webhooks/1/{TOKEN}")
        try:
            raise ValueError(f"bad url https://hooks.slack.com/services/T1/B2/{TOKEN}")
        except ValueError:
            log.exception("channel failed")
    assert TOKEN not in caplog.text
    assert "webhooks/1/***" in caplog.text and "services/***" in caplog.text


async def test_a_malformed_webhook_url_never_reaches_history_or_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A URL with a space in it, as a hand-built setting could give (the config refuses it).
    url = f"http://127.0.0.1:9/api/webhooks/1234567/{TOKEN} x"
    settings = settings_for(tmp_path, channels=("discord",))
    now = BASE + days(1)
    async with Engine(
        settings, channels=[DiscordChannel(url, timeout=2.0)], load_plugins=False, clock=lambda: now
    ) as engine:
        await engine.store.add_shipments(
            [NewShipment(number="RR123456789CN", email="buyer@example.com", registered_at=BASE)]
        )
        caplog.set_level(logging.DEBUG)
        await engine.apply_track_info("RR123456789CN", make_info(10))
        await engine.dispatch_pending()
        rows = await engine.store.history()
    assert rows and all(r.send_status in ("pending", "failed") for r in rows)
    reasons = " ".join(r.reason or "" for r in rows)
    assert reasons and TOKEN not in reasons
    assert TOKEN not in caplog.text
