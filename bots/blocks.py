"""Block Kit for every message and modal the bot sends (pure: values in, blocks out).

Built with ``slack_sdk.models.blocks`` so Slack's shapes are checked by the library, not by
hand-written dicts. All text that came from outside (carriers' event texts, tags, order numbers,
what a user typed) is data: control characters are removed, ``& < >`` are escaped in mrkdwn (so
an event text can neither ping ``<!channel>`` nor forge a link), and every field is clipped to
Slack's limits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View
from trackops.bots.parse import usage
from trackops.core.carriers import country_code, country_name
from trackops.core.channels import Message
from trackops.core.wire import PackageStatus
from trackops.plugins.messages import event_view, headline, route, status_name

if TYPE_CHECKING:
    from trackops.core.service import HistoryRow, ShipmentDetail, ShipmentRow

__all__ = [
    "ACTION_HISTORY",
    "ACTION_MORE",
    "ACTION_RETRACK",
    "ACTION_STOP",
    "PARAM_VIEW",
    "AddDraft",
    "alert_blocks",
    "escape",
    "help_blocks",
    "history_blocks",
    "list_blocks",
    "param_modal",
    "plain",
    "status_blocks",
    "text_blocks",
]

ACTION_STOP: Final = "track_stop"
ACTION_RETRACK: Final = "track_retrack"
ACTION_HISTORY: Final = "track_history"
ACTION_MORE: Final = "track_list_more"
PARAM_VIEW: Final = "track_add_param"
"""callback_id of the modal that asks for a carrier's extra parameter."""
PARAM_BLOCK: Final = "param"
PARAM_INPUT: Final = "value"

TIMELINE_EVENTS: Final = 5
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]")


def plain(text: object, limit: int = 3000) -> str:
    """``text`` with control characters removed and clipped to ``limit`` characters."""
    value = _CONTROL_RE.sub("", str(text if text is not None else ""))
    value = value.replace("\r", "").replace("\t", " ")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def escape(text: object, limit: int = 3000) -> str:
    """``plain(text)`` made safe for mrkdwn: ``& < >`` escaped (no pings, no forged links)."""
    value = plain(text, 100_000)
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text[:3000] or " ")


def _field(label: str, value: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=f"*{label}*\n{escape(value, 1900)}")


def _country(iso: str | None) -> str:
    if not iso:
        return ""
    code = country_code(iso)
    return country_name(code) if code is not None else iso


def _route(origin: str | None, destination: str | None) -> str:
    a, b = _country(origin), _country(destination)
    if not a and not b:
        return ""
    return f"{a or 'unknown'} → {b or 'unknown'}"


def _status_text(row: ShipmentRow) -> str:
    if row.status_code != int(row.status):  # a code 17TRACK has not documented
        return f"Unknown status ({row.status_code})"
    return row.status.display


def _buttons(number: str, *, active: bool = True) -> ActionsBlock:
    value = plain(number, 50)
    elements: list[ButtonElement] = []
    if active:
        elements.append(
            ButtonElement(
                text="Stop",
                action_id=ACTION_STOP,
                value=value,
                style="danger",
                confirm=ConfirmObject(
                    title="Stop tracking?",
                    text=f"17TRACK stops tracking {value}; Retrack starts it again.",
                    confirm="Stop",
                    deny="Cancel",
                ),
            )
        )
    elements.append(ButtonElement(text="Retrack", action_id=ACTION_RETRACK, value=value))
    elements.append(ButtonElement(text="History", action_id=ACTION_HISTORY, value=value))
    return ActionsBlock(block_id=f"shipment:{value}", elements=elements)


def text_blocks(text: str) -> list[Block]:
    """One mrkdwn section with ``text`` (already escaped by the caller where needed)."""
    return [SectionBlock(text=_md(text))]


def status_blocks(detail: ShipmentDetail) -> list[Block]:
    """``/track status``: status, carrier, route, latest event, a short timeline, buttons."""
    row = detail.shipment
    title = f"{plain(row.number, 50)} · {_status_text(row)}"
    fields = [_field("Status", _status_text(row))]
    carrier = row.carrier_name or "not known yet"
    if detail.final_carrier_name and detail.final_carrier_name != row.carrier_name:
        carrier += f" → {detail.final_carrier_name}"
    fields.append(_field("Carrier", carrier))
    route_text = _route(row.origin_country, row.destination_country)
    if route_text:
        fields.append(_field("Route", route_text))
    latest = " · ".join(
        p
        for p in (row.latest_event_time, row.latest_event_location, row.latest_event_description)
        if p
    )
    fields.append(_field("Latest event", latest or "none yet"))
    if row.order:
        fields.append(_field("Order", row.order))
    if row.tag:
        fields.append(_field("Tag", row.tag))
    fields.append(_field("Tracking", "active" if row.active else "stopped"))
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=plain(title, 150))),
        SectionBlock(fields=fields[:10]),
    ]
    events = detail.events[:TIMELINE_EVENTS]
    if events:
        lines = []
        for event in events:
            parts = [p for p in (event.time, event.location, event.description) if p]
            lines.append("• " + escape(" · ".join(parts), 400))
        more = len(detail.events) - len(events)
        if more > 0:
            lines.append(f"_… {more} earlier event{'s' if more != 1 else ''}_")
        blocks.append(SectionBlock(text=_md("*Timeline*\n" + "\n".join(lines))))
    blocks.append(_buttons(row.number, active=row.active))
    return blocks


def _row_line(row: ShipmentRow) -> str:
    parts = [f"*{escape(row.number, 60)}*", _status_text(row)]
    if row.carrier_name:
        parts.append(escape(row.carrier_name, 80))
    if row.order:
        parts.append(f"order {escape(row.order, 60)}")
    if row.latest_event_description:
        parts.append(escape(row.latest_event_description, 120))
    if not row.active:
        parts.append("_stopped_")
    return " · ".join(parts)


def list_blocks(
    rows: Sequence[ShipmentRow],
    *,
    total: int,
    status: PackageStatus | None,
    next_cursor: str | None,
    shown_before: int = 0,
) -> list[Block]:
    """``/track list``: one line per shipment and a "More" button while pages remain."""
    what = f"{status.display} shipments" if status is not None else "Shipments"
    if not rows:
        return text_blocks(f"No {what.lower()} yet." if status is None else f"No {what}.")
    first, last = shown_before + 1, shown_before + len(rows)
    blocks: list[Block] = [
        SectionBlock(text=_md(f"*{what}* {first}-{last} of {total}")),
        SectionBlock(text=_md("\n".join(_row_line(r) for r in rows))),
    ]
    if next_cursor is not None:
        value = json.dumps(
            {"after": next_cursor, "status": int(status) if status is not None else None, "n": last}
        )
        if len(value) <= 2000:
            blocks.append(
                ActionsBlock(
                    block_id="list-more",
                    elements=[ButtonElement(text="More", action_id=ACTION_MORE, value=value)],
                )
            )
    return blocks


def history_blocks(rows: Sequence[HistoryRow], *, search: str, more: bool) -> list[Block]:
    """``/track history``: the notification rows for ``search``, newest first."""
    if not rows:
        return text_blocks(f"No notifications for {escape(search, 100)}.")
    lines = []
    for row in rows:
        when = row.created_at.strftime("%Y-%m-%d %H:%M")
        change = status_name(row.to_status) if row.to_status is not None else row.audience
        line = (
            f"`{row.id}` {when} · *{escape(row.number or 'report', 60)}* · {escape(change, 40)}"
            f" · {escape(row.channel, 40)} → {escape(row.recipient, 120)}"
            f" · {escape(row.condition, 60)} ({row.condition_kind}) · *{row.send_status}*"
        )
        if row.reason:
            line += f": {escape(row.reason, 200)}"
        lines.append(line)
    blocks: list[Block] = [
        SectionBlock(text=_md(f"*Notifications for {escape(search, 100)}*")),
        *_sections(lines),  # every row whole, however long the failure reasons
    ]
    if more:
        blocks.append(
            ContextBlock(
                elements=[_md(f"Showing the newest {len(rows)}; `trackops history` has them all.")]
            )
        )
    return blocks


HELP_LINES: Final = (
    ("add", "register a parcel (carrier by name or code; quotes for names with spaces)"),
    ("status", "status, route, latest event and timeline, with buttons"),
    ("list", "shipments, newest first, optionally one status"),
    ("stop", "stop tracking (admins)"),
    ("retrack", "start tracking a stopped parcel again"),
    ("delete", "delete a parcel from 17TRACK and trackops (admins)"),
    ("carrier", "change a parcel's carrier (admins)"),
    ("history", "notifications sent for a parcel, order or email"),
    ("subscribe", "this channel gets seller alerts for these statuses (default alert undelivered)"),
    ("unsubscribe", "this channel stops getting alerts"),
    ("help", "this help"),
)


def help_blocks(unknown: str | None = None, plugins: Sequence[str] = ()) -> list[Block]:
    """``/track help`` (and the answer to an unknown subcommand, which it names); ``plugins``:
    the lines of the plugins' subcommands (``extensions.help_lines``), listed after ours."""
    lines = [f"`{usage(verb)}`: {text}" for verb, text in HELP_LINES]
    statuses = ", ".join(s.slug for s in PackageStatus)
    blocks: list[Block] = []
    if unknown is not None:
        blocks.append(
            SectionBlock(text=_md(f"`{escape(unknown, 40)}` is not a /track command. Try one of:"))
        )
    blocks.extend(_sections(lines))
    # The plugins' lines in sections of their own, each within Slack's 3,000 characters, so
    # that many plugins' commands are listed whole, never cut off at the section's limit.
    blocks.extend(_sections(plugins, room=_MAX_BLOCKS - len(blocks) - 1))
    blocks.append(ContextBlock(elements=[_md(f"Statuses: {statuses} (or their codes).")]))
    return blocks


_MAX_BLOCKS: Final = 50
"""Blocks Slack takes in one message."""


def _sections(lines: Sequence[str], *, room: int = _MAX_BLOCKS) -> list[SectionBlock]:
    """``lines`` packed into sections of at most 3,000 characters, at most ``room`` of them
    (the last one says how many lines did not fit)."""
    sections: list[list[str]] = [[]]
    for line in lines:
        line = line[:3000]
        if sections[-1] and len("\n".join([*sections[-1], line])) > 3000:
            sections.append([])
        sections[-1].append(line)
    if not sections[-1]:
        return []
    if len(sections) > room:
        left = sum(len(chunk) for chunk in sections[room - 1 :])
        sections = [*sections[: room - 1], [f"… and {left} more"]]
    return [SectionBlock(text=_md("\n".join(chunk))) for chunk in sections]


def alert_blocks(message: Message) -> tuple[str, list[Block]]:
    """A seller alert for a subscribed channel: fallback text and blocks (with buttons)."""
    title = plain(headline(message), 150)
    fields: list[MarkdownTextObject] = []
    change = status_name(message.to_status)
    if message.from_status is not None and message.from_status != message.to_status:
        change = f"{status_name(message.from_status)} → {change}"
    fields.append(_field("Status", change or "changed"))
    fields.append(_field("Carrier", message.carrier_name or "not known yet"))
    where = route(message)
    if where:
        fields.append(_field("Route", where))
    if message.order:
        fields.append(_field("Order", message.order))
    event = event_view(message)
    if event is not None:
        fields.append(_field("Latest event", str(event)))
    number = escape(message.number, 60)
    if message.tracking_url.startswith(("https://", "http://")):
        text = f"Tracking number <{escape(message.tracking_url, 500)}|{number}>"
    else:
        text = f"Tracking number {number}"
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=title)),
        SectionBlock(text=_md(text), fields=fields[:10]),
    ]
    if message.number:
        blocks.append(_buttons(message.number))
    blocks.append(
        ContextBlock(
            elements=[_md(escape(f"{message.condition} ({message.condition_kind}) · trackops"))]
        )
    )
    return title, blocks


@dataclass(frozen=True)
class AddDraft:
    """A ``/track add`` waiting for its carrier's extra parameter (the modal's metadata)."""

    number: str
    carrier: int
    tag: str | None
    channel_id: str

    def to_metadata(self) -> str:
        """JSON for the modal's ``private_metadata`` (at most 3000 characters)."""
        return json.dumps(
            {"n": self.number, "c": self.carrier, "t": self.tag, "ch": self.channel_id}
        )

    @classmethod
    def from_metadata(cls, text: object) -> AddDraft:
        """Read ``to_metadata``'s JSON back; ``ValueError`` when it is not that."""
        if not isinstance(text, str) or len(text) > 3000:
            raise ValueError("the form's metadata is missing")
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("the form's metadata is not an object")
        number, carrier, tag, channel = data.get("n"), data.get("c"), data.get("t"), data.get("ch")
        if not isinstance(number, str) or not isinstance(carrier, int):
            raise ValueError("the form's metadata lacks the number or the carrier")
        if tag is not None and not isinstance(tag, str):
            raise ValueError("the form's tag is not text")
        if not isinstance(channel, str):
            raise ValueError("the form's channel is not text")
        return cls(number=number, carrier=carrier, tag=tag, channel_id=channel)


def param_modal(draft: AddDraft, *, carrier_name: str, kind: str, hint: str) -> View:
    """The modal that asks for a carrier's extra parameter, with the carrier helper's hint."""
    return View(
        type="modal",
        callback_id=PARAM_VIEW,
        title=PlainTextObject(text="Add a parcel"),
        submit=PlainTextObject(text="Register"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=draft.to_metadata(),
        blocks=[
            SectionBlock(
                text=_md(
                    f"*{escape(draft.number, 60)}* with *{escape(carrier_name, 100)}*"
                    f" needs a {escape(kind, 60)}."
                )
            ),
            DividerBlock(),
            InputBlock(
                block_id=PARAM_BLOCK,
                label=PlainTextObject(text=plain(kind.capitalize() or "Parameter", 2000)),
                hint=PlainTextObject(text=plain(hint, 2000)) if hint else None,
                element=PlainTextInputElement(
                    action_id=PARAM_INPUT,
                    placeholder=PlainTextObject(text=plain(hint, 150)) if hint else None,
                    max_length=100,
                ),
            ),
        ],
    )
