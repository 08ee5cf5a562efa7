"""README and ``--help`` say only what exists, and ``--help`` explains every argument.

The README's ``trackops`` command lines (its shell blocks) are parsed by the real parser, and
each command and ``--option`` it names in running text must exist; every argument of every
sub-command (plugin commands included) has a help text; ``trackops --help`` in its own process
lists every command with one.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from test_cli import TRACKOPS
from trackops.core import cli

README = Path(__file__).resolve().parents[2] / "README.md"

# The README's placeholders, as a reader would fill them in.
PLACEHOLDERS = {
    "NUMBER": "RR123456789CN",
    "ID": "1",
    "ID...": "1",
    "NAME": "ups",
    "<that>": "demo.toml",
    "FILE": "out.csv",
    "URL": "http://127.0.0.1:9/push",
    "X": "60",
    "S": "0",
}


@pytest.fixture
def parser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    """The parser a user's ``trackops`` builds, with the installed plugins' commands."""
    monkeypatch.chdir(tmp_path)  # no ./trackops.toml: every built-in plugin is loaded
    monkeypatch.delenv("TRACKOPS_CONFIG", raising=False)
    plugins = cli._plugin_commands(["--help"])
    assert plugins.refused is None
    return cli.build_parser(plugins.commands)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _shell_lines(text: str) -> list[str]:
    """The ``trackops`` lines of the README's ```sh blocks, comments cut off."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()
            if command.startswith("trackops"):
                lines.append(command)
            elif "&& .venv/bin/trackops" in command:
                lines.append("trackops" + command.rsplit(".venv/bin/trackops", 1)[1])
    return lines


def _inline_commands(text: str) -> list[str]:
    """The README's `trackops ...` spans in running text (they may break across lines)."""
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    return [" ".join(span.split()) for span in re.findall(r"`(trackops [^`]*)`", prose)]


def _words(command: str) -> list[str]:
    words = shlex.split(command)[1:]
    return [PLACEHOLDERS.get(w, w) for w in words]


def test_the_readmes_command_lines_parse(parser: argparse.ArgumentParser) -> None:
    lines = _shell_lines(README.read_text(encoding="utf-8"))
    assert len(lines) >= 20, lines  # the blocks were found
    for line in lines:
        try:
            parser.parse_args(_words(line))
        except SystemExit as exc:  # --version exits 0 after printing
            assert exc.code == 0 and line == "trackops --version", line


def test_every_command_and_option_the_readme_names_exists(
    parser: argparse.ArgumentParser,
) -> None:
    commands = _subparsers(parser)
    spans = _inline_commands(README.read_text(encoding="utf-8"))
    assert len(spans) >= 15, spans
    top = {o for a in parser._actions for o in a.option_strings}
    for span in spans:
        words = [w.strip("[]") for w in _words(span)]
        while words and words[0] in top:  # --config FILE, --help
            option = words.pop(0)
            if option == "--config":
                words.pop(0)
        if not words:
            continue
        assert words[0] in commands, span
        sub = commands[words[0]]
        known = {o for a in sub._actions for o in a.option_strings}
        for word in words[1:]:
            if word.startswith("-"):
                assert word in known, f"{span}: {word} is not an option of {words[0]}"
        positional = [a for a in sub._actions if not a.option_strings]
        for action in positional:  # a named action (inbox replay) is one of its choices
            if action.choices and len(words) > 1 and not words[1].startswith("-"):
                assert words[1] in action.choices, span


def test_every_argument_of_every_command_has_a_help_text(
    parser: argparse.ArgumentParser,
) -> None:
    commands = _subparsers(parser)
    assert {"init", "sandbox", "serve", "register", "sync", "report", "demo", "tui"} <= set(
        commands
    )
    missing = [
        f"trackops {name} {action.option_strings or action.dest}"
        for name, sub in [("", parser), *commands.items()]
        for action in sub._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and not action.help
    ]
    assert missing == []


def test_trackops_help_lists_every_command_with_what_it_does(
    parser: argparse.ArgumentParser, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(TRACKOPS), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert result.returncode == 0 and result.stderr == "", result
    listed: dict[str, str] = {}
    lines = result.stdout.splitlines()
    for at, line in enumerate(lines):
        found = re.match(r"    (\S+)(\s{2,}(\S.*))?$", line)
        if found:  # a long name's help is on the next line
            listed[found.group(1)] = found.group(3) or lines[at + 1].strip()
    assert set(listed) == set(_subparsers(parser)), listed
    assert all(listed.values())
