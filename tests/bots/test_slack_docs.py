"""docs/slack.md is what a workspace admin follows: its manifests create an app whose
command, URLs and scopes are the bot's, and each mode's config and environment, exactly as
written there, turn that mode on in ``trackops serve`` (and only that one)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from trackops.bots.server import SLACK_EVENTS_PATH
from trackops.core.config import ConfigError, load_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "slack.md"
MODES = ("HTTP mode", "Socket Mode")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _by_mode(section: str, language: str) -> dict[str, str]:
    """The ``language`` block under each mode's heading line in ``section``."""
    text = _section(section)
    found = {}
    for mode in MODES:
        match = re.search(rf"{mode}:?\n+```{language}\n(.*?)```", text, re.DOTALL)
        assert match, f"docs/slack.md '{section}' has no {language} block for {mode}"
        found[mode] = match.group(1)
    return found


def test_the_manifests_create_the_app_the_bot_expects() -> None:
    manifests = [yaml.safe_load(block) for block in _blocks("yaml")]
    assert len(manifests) == 2
    by_mode: dict[bool, dict[str, Any]] = {}
    for manifest in manifests:
        (command,) = manifest["features"]["slash_commands"]
        assert command["command"] == "/track"
        # chat:write: chat.postMessage (alerts) and chat.postEphemeral (the modal's answer)
        assert {"commands", "chat:write"} <= set(manifest["oauth_config"]["scopes"]["bot"])
        assert manifest["settings"]["interactivity"]["is_enabled"] is True  # buttons, modal
        by_mode[manifest["settings"]["socket_mode_enabled"]] = manifest
    http, socket = by_mode[False], by_mode[True]
    for url in (
        http["features"]["slash_commands"][0]["url"],
        http["settings"]["interactivity"]["request_url"],
    ):
        assert url.startswith("https://") and url.endswith(SLACK_EVENTS_PATH)
    assert "url" not in socket["features"]["slash_commands"][0]
    assert "request_url" not in socket["settings"]["interactivity"]


@pytest.mark.parametrize("mode", MODES)
def test_each_modes_config_and_environment_turn_that_mode_on(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _by_mode("2. Configure trackops", "toml")[mode]
    exports = _by_mode("3. Run it", "sh")[mode]
    (line,) = [x for x in exports.splitlines() if x.startswith("export ")]
    exported = dict(word.split("=", 1) for word in line.split()[1:])
    named = set(re.findall(r'"env:([A-Z_]+)"', table))
    assert named == set(exported), f"{mode}: the config names {named}, the export {exported}"
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    config = tmp_path / "trackops.toml"
    config.write_text('[api]\nkey = "k"\n' + table, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"environment variable SLACK_\w+ to be set"):
        load_settings(config)  # a variable not exported: one message naming it

    for name in exported:
        monkeypatch.setenv(name, f"{name.lower()}-value")
    slack = load_settings(config).slack
    assert slack.bot_token.reveal() == "slack_bot_token-value"
    assert bool(slack.signing_secret) is (mode == "HTTP mode")  # POST /slack/events
    assert bool(slack.app_token) is (mode == "Socket Mode")  # the WebSocket
    assert slack.admins == ("U012ABCDEF",)
    assert tomllib.loads(table)["slack"]["admins"] == ["U012ABCDEF"]
