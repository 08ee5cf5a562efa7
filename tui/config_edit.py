"""Edit the TOML config in place for the settings screen, keeping the user's comments.

``tomlkit`` changes only the values asked for; the rest of the file (other settings, comments,
order, blank lines) stays as the user wrote it. The edited text is validated by the config's
own loader before it is written, so an invalid value is refused with ``ConfigError``'s message
and the file is left untouched; after writing, the file is read back with ``load_settings``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT
from tomlkit.toml_document import TOMLDocument
from trackops.core.config import ConfigError, Settings, load_settings, settings_from_dict

__all__ = ["NotificationChanges", "conditions_text", "save_notification_settings"]


@dataclass(frozen=True)
class NotificationChanges:
    """What the settings screen edits. ``daily_limit`` is the text typed (validated by the
    config loader); ``conditions`` is TOML text of ``[[notifications.conditions]]`` tables, or
    None to leave them exactly as they are."""

    customer_enabled: bool
    seller_enabled: bool
    seller_email: str
    daily_limit: str
    report_recipients: tuple[str, ...]
    conditions: str | None = None


def _read(path: Path) -> TOMLDocument:
    if not path.exists():
        return tomlkit.document()
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _table(doc: TOMLDocument, dotted: str) -> MutableMapping[str, Any]:
    """The table at ``a.b.c``, created (as a real ``[a.b.c]`` section) when missing."""
    node: Any = doc
    for part in dotted.split("."):
        if part not in node:
            node[part] = tomlkit.table(is_super_table=False)
        node = node[part]
        if not isinstance(node, MutableMapping):  # tables, inline tables, out-of-order tables
            raise ConfigError(f"[{dotted}] is not a table in the config file")
    return node


def _set(table: MutableMapping[str, Any], key: str, value: Any) -> None:
    """Set ``key`` only when it changed, so an untouched value keeps its exact spelling."""
    if key in table and table[key] == value:
        return
    table[key] = value


def conditions_text(path: Path) -> str:
    """The ``[[notifications.conditions]]`` tables of the file, as TOML text."""
    doc = _read(path)
    notifications = doc.get("notifications")
    conditions = notifications.get("conditions") if notifications is not None else None
    if not conditions:
        return ""
    holder = tomlkit.document()
    holder.append("notifications", {"conditions": conditions})
    text = tomlkit.dumps(holder)
    return text.replace("[notifications]\n", "", 1).lstrip("\n")


def _parse_conditions(text: str, path: Path) -> AoT | None:
    if not text.strip():
        return None
    try:
        parsed = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{path}: [[notifications.conditions]]: not valid TOML: {exc}") from None
    keys = set(parsed)
    notes = parsed.get("notifications")
    if keys != {"notifications"} or not isinstance(notes, dict) or set(notes) != {"conditions"}:
        raise ConfigError(
            f"{path}: the custom conditions: expected only [[notifications.conditions]] tables"
        )
    conditions = notes["conditions"]
    if not isinstance(conditions, AoT):
        raise ConfigError(f"{path}: [[notifications.conditions]]: expected an array of tables")
    return conditions


def save_notification_settings(path: Path, changes: NotificationChanges) -> Settings:
    """Write ``changes`` into ``path`` and return the settings read back from it.

    Raises ``ConfigError`` (the loader's own message) and leaves the file as it was when the
    result would not load.
    """
    doc = _read(path)
    customer = _table(doc, "notifications.customer")
    seller = _table(doc, "notifications.seller")
    reports = _table(doc, "notifications.reports")
    _set(customer, "enabled", changes.customer_enabled)
    _set(seller, "enabled", changes.seller_enabled)
    _set(seller, "email", changes.seller_email.strip())
    limit = changes.daily_limit.strip()
    _set(seller, "daily_limit", int(limit) if limit.isdigit() else limit)
    recipients = [r.strip() for r in changes.report_recipients if r.strip()]
    if list(reports.get("recipients", [])) != recipients:
        array = tomlkit.array()
        array.extend(recipients)
        reports["recipients"] = array
    if changes.conditions is not None:
        conditions = _parse_conditions(changes.conditions, path)
        notifications = _table(doc, "notifications")
        if conditions is not None:
            notifications["conditions"] = conditions
        elif "conditions" in notifications:
            del notifications["conditions"]
    text = tomlkit.dumps(doc)
    settings_from_dict(tomllib.loads(text), str(path))  # ConfigError: nothing is written
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return load_settings(path)
