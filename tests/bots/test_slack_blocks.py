"""Block Kit builders (pure): what each message shows, and outside text kept as data."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

import pytest
from plugin_helpers import make_message
from trackops.bots.blocks import (
    ACTION_HISTORY,
    ACTION_MORE,
    ACTION_RETRACK,
    ACTION_STOP,
    PARAM_BLOCK,
    PARAM_VIEW,
    AddDraft,
    alert_blocks,
    escape,
    help_blocks,
    history_blocks,
    list_blocks,
    param_modal,
    plain,
    status_blocks,
)
from trackops.core.service import HistoryRow, ShipmentDetail, ShipmentRow, TimelineEvent
from trackops.core.wire import PackageStatus as S

WHEN = datetime(2026, 3, 2, 9, 30)


def row(number: str = "RR123456785CN", **changes: Any) -> ShipmentRow:
    values: dict[str, Any] = {
        "number": number,
        "carrier": 3011,
        "carrier_name": "China Post",
        "status": S.IN_TRANSIT,
        "status_code": 10,
        "active": True,
        "origin_country": "CN",
        "destination_country": "NL",
        "latest_event_time": "2026-03-02 17:30",
        "latest_event_location": "Köln",
        "latest_event_description": "Departed",
        "updated_at": WHEN,
        "event_at": WHEN,
        "registered_at": WHEN,
        "tag": None,
        "order": "1001",
        "email": "ada@example.com",
    }
    values.update(changes)
    return ShipmentRow(**values)


def event(description: str, time: str = "2026-03-02 17:30") -> TimelineEvent:
    return TimelineEvent(
        time=time, at=None, location="Köln", description=description, carrier=3011,
        carrier_name="China Post", leg=1,
    )  # fmt: skip


def detail(shipment: ShipmentRow, events: list[TimelineEvent]) -> ShipmentDetail:
    return ShipmentDetail(
        shipment=shipment, final_carrier=None, final_carrier_name="", extra_param=None,
        buyer_name=None, registered_at=WHEN, stopped_at=None, last_push_at=None,
        events=events, notifications=[], raw_status_code=shipment.status_code,
    )  # fmt: skip


def dicts(blocks: list[Any]) -> list[dict[str, Any]]:
    return [b.to_dict() for b in blocks]


def all_text(blocks: list[Any]) -> str:
    return json.dumps(dicts(blocks), ensure_ascii=False)


def test_status_shows_status_carrier_route_event_timeline_and_buttons() -> None:
    events = [event(f"step {i}") for i in range(7)]
    blocks = dicts(status_blocks(detail(row(tag="gift"), events)))
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "RR123456785CN · In transit"},
    }
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields == [
        "*Status*\nIn transit",
        "*Carrier*\nChina Post",
        "*Route*\nChina → Netherlands",
        "*Latest event*\n2026-03-02 17:30 · Köln · Departed",
        "*Order*\n1001",
        "*Tag*\ngift",
        "*Tracking*\nactive",
    ]
    timeline = blocks[2]["text"]["text"]
    assert timeline.startswith("*Timeline*\n• 2026-03-02 17:30 · Köln · step 0")
    assert "step 4" in timeline and "step 5" not in timeline
    assert timeline.endswith("_… 2 earlier events_")
    actions = blocks[3]
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
        (ACTION_STOP, "RR123456785CN"),
        (ACTION_RETRACK, "RR123456785CN"),
        (ACTION_HISTORY, "RR123456785CN"),
    ]
    assert actions["elements"][0]["confirm"]["confirm"]["text"] == "Stop"


def test_a_stopped_shipment_has_no_stop_button_and_an_unknown_code_shows_the_code() -> None:
    blocks = dicts(status_blocks(detail(row(active=False, status_code=60), [])))
    assert blocks[0]["text"]["text"] == "RR123456785CN · Unknown status (60)"
    assert [e["action_id"] for e in blocks[-1]["elements"]] == [ACTION_RETRACK, ACTION_HISTORY]


@pytest.mark.parametrize(
    "hostile",
    [
        "<!channel> parcel <https://evil.example|your bank>",
        "ANSI \x1b[31mred\x1b[0m and a NUL \x00 and \u202etxet desrever",
        "a & b < c > d",
    ],
)
def test_outside_text_is_data(hostile: str) -> None:
    shipment = row(latest_event_description=hostile, order=hostile, tag=hostile)
    text = all_text(status_blocks(detail(shipment, [event(hostile)])))
    assert "<!channel>" not in text and "<https://" not in text
    assert "\x1b" not in text and "\x00" not in text and "\u202e" not in text
    if "&" in hostile:
        assert "a &amp; b &lt; c &gt; d" in text


def test_escape_and_plain_clip() -> None:
    assert escape("<@U1> & co") == "&lt;@U1&gt; &amp; co"
    assert plain("x" * 10, 5) == "xxxx…"
    assert len(escape("<" * 5000, 3000)) == 3000


def test_list_with_more_button_carries_the_cursor() -> None:
    rows = [row(f"RR{i:09d}CN") for i in range(3)]
    blocks = dicts(list_blocks(rows, total=13, status=S.ALERT, next_cursor="abc", shown_before=10))
    assert blocks[0]["text"]["text"] == "*Alert shipments* 11-13 of 13"
    assert blocks[1]["text"]["text"].splitlines()[0] == (
        "*RR000000000CN* · In transit · China Post · order 1001 · Departed"
    )
    (button,) = blocks[2]["elements"]
    assert button["action_id"] == ACTION_MORE
    assert json.loads(button["value"]) == {"after": "abc", "status": 50, "n": 13}
    assert (
        dicts(list_blocks([], total=0, status=None, next_cursor=None))[0]["text"]["text"]
        == "No shipments yet."
    )


def test_history_rows() -> None:
    history = HistoryRow(
        id=7, created_at=WHEN, number="RR123456785CN", order="1001", recipient="C0ALERTS",
        channel="slack_bot", audience="seller", condition="seller", condition_kind="default",
        from_status=S.IN_TRANSIT, to_status=S.ALERT, send_status="failed",
        reason="Slack refused: channel_not_found", attempts=1, sent_at=None,
    )  # fmt: skip
    text = all_text(history_blocks([history], search="RR123456785CN", more=True))
    assert (
        "`7` 2026-03-02 09:30 · *RR123456785CN* · Alert · slack_bot → C0ALERTS"
        " · seller (default) · *failed*: Slack refused: channel_not_found"
    ) in text
    assert "`trackops history` has them all" in text

    # Fifteen rows with long failure reasons: each shown whole, within Slack's 3,000 characters.
    reason = "SMTP refused: 550 5.1.1 mailbox unavailable " + "x" * 150
    rows = [
        dataclasses.replace(history, id=i, reason=reason, recipient=f"buyer{i}@example.com")
        for i in range(15)
    ]
    blocks = dicts(history_blocks(rows, search="RR123456785CN", more=False))
    sections = [b["text"]["text"] for b in blocks[1:]]
    assert all(len(text) <= 3000 for text in sections) and len(sections) > 1
    shown = "\n".join(sections).splitlines()
    assert [line.split("`")[1] for line in shown] == [str(i) for i in range(15)]
    assert all(line.endswith(escape(reason)) for line in shown)


def test_help_names_every_command_and_an_unknown_one() -> None:
    text = all_text(help_blocks("<!here>"))
    for verb in ("add", "status", "list", "stop", "retrack", "delete", "carrier", "history",
                 "subscribe", "unsubscribe", "help"):  # fmt: skip
        assert f"`/track {verb}" in text
    assert "`&lt;!here&gt;` is not a /track command" in text


def test_help_lists_every_plugin_line_whole_within_slacks_limits() -> None:
    lines = [
        f"`/track p{i:03d} {'ARG ' * 20}`: {'does things ' * 20} (plugin p{i})" for i in range(60)
    ]
    blocks = dicts(help_blocks(plugins=lines))
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(text) <= 3000 for text in sections)
    shown = "\n".join(sections).splitlines()
    assert [line for line in shown if line in lines] == lines  # all 60, whole, in order
    assert "`/track add NUMBER [CARRIER] [PARAM] [TAG]`" in sections[0]

    many = [f"`/track p{i:04d}`: {'x' * 2900} (plugin p)" for i in range(100)]
    blocks = dicts(help_blocks("nope", plugins=many))
    assert len(blocks) == 50  # Slack's limit per message
    shown_many = [b["text"]["text"] for b in blocks[2:-2]]
    assert shown_many == many[:46]  # one per section: 46 fit beside the bot's own
    assert blocks[-2]["text"]["text"] == "… and 54 more"
    assert blocks[-1]["type"] == "context"


def test_alert_blocks_have_the_headline_fields_and_buttons() -> None:
    message = make_message(
        audience="seller", channel="slack_bot", recipient="C0ALERTS", condition="seller",
        to_status=S.ALERT,
    )  # fmt: skip
    text, blocks = alert_blocks(message)
    shown = dicts(blocks)
    assert text == "Alert: shipment RR123456789CN (order 1001) needs attention"
    assert shown[0]["type"] == "header" and shown[0]["text"]["text"] == text
    fields = [f["text"] for f in shown[1]["fields"]]
    assert fields[:3] == [
        "*Status*\nIn transit → Alert",
        "*Carrier*\nChina Post",
        "*Route*\nChina → Netherlands",
    ]
    assert shown[1]["text"]["text"] == (
        "Tracking number <https://t.17track.net/en#nums=RR123456789CN|RR123456789CN>"
    )
    ids = [e["action_id"] for b in shown for e in b.get("elements", ()) if "action_id" in e]
    assert ids == [ACTION_STOP, ACTION_RETRACK, ACTION_HISTORY]


def test_param_modal_and_its_metadata() -> None:
    draft = AddDraft(number="123456789012", carrier=100005, tag="gift", channel_id="C0SHIP")
    view = param_modal(
        draft, carrier_name="GLS (100005)", kind="postal code", hint="required: postal code"
    ).to_dict()
    assert view["callback_id"] == PARAM_VIEW
    assert AddDraft.from_metadata(view["private_metadata"]) == draft
    (input_block,) = [b for b in view["blocks"] if b["type"] == "input"]
    assert input_block["block_id"] == PARAM_BLOCK
    assert input_block["label"]["text"] == "Postal code"
    assert input_block["hint"]["text"] == "required: postal code"
    for broken in (None, "", "{", "[]", json.dumps({"n": 1, "c": 2, "ch": "C"}), "x" * 3001):
        with pytest.raises(ValueError):
            AddDraft.from_metadata(broken)
