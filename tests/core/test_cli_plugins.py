"""Plugins add `trackops` sub-commands: found through the `trackops` entry-point group (a
distribution on PYTHONPATH, not installed into the venv), listed in --help with their plugin,
run with the service, and isolated when they fail."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN = """
from trackops.core.errors import InvalidInputError
from trackops.core.hookspecs import CliCommand, hookimpl


def _configure(parser):
    parser.add_argument("--name", default="world")
    parser.add_argument("--fail", choices=["bug", "user"])


async def _hello(args, ctx):
    if args.fail == "bug":
        raise RuntimeError("the plugin has a bug")
    if args.fail == "user":
        raise InvalidInputError("a name must be given as --name NAME")
    async with ctx.open_service() as service:
        count = await service.count_shipments()
    ctx.print(f"hello {args.name}: {count} shipments, asked by {ctx.actor}\\x1b[2J")
    return 0


@hookimpl
def trackops_register_commands(register):
    register(CliCommand(name="hello", help="say hello", run=_hello, configure=_configure))
"""


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    dist = site / "hello_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[trackops]\nhello = hello_plugin\n")
    (site / "hello_plugin.py").write_text(textwrap.dedent(PLUGIN))
    return site


def _run(site: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "trackops.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "t.db"}"\n')
    env = {**os.environ, "PYTHONPATH": str(site), "TRACKOPS_CONFIG": str(config)}
    return subprocess.run(
        [sys.executable, "-m", "trackops.core.cli", *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_a_plugin_command_is_listed_and_runs_with_the_service(
    plugin_path: Path, tmp_path: Path
) -> None:
    helped = _run(plugin_path, tmp_path, "--help")
    assert helped.returncode == 0
    assert "say hello (plugin hello)" in " ".join(helped.stdout.split())
    done = _run(plugin_path, tmp_path, "hello", "--name", "ops")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("hello ops: 0 shipments, asked by cli:")
    assert "\x1b" not in done.stdout  # outside text never reaches the terminal raw


def test_a_failing_plugin_command_is_one_line_never_a_traceback(
    plugin_path: Path, tmp_path: Path
) -> None:
    bug = _run(plugin_path, tmp_path, "hello", "--fail", "bug")
    assert bug.returncode == 1
    assert bug.stderr.strip() == (
        "trackops: error: plugin 'hello': command 'hello' failed: "
        "RuntimeError: the plugin has a bug"
    )
    user = _run(plugin_path, tmp_path, "hello", "--fail", "user")
    assert user.returncode == 1
    assert user.stderr.strip() == "trackops: error: a name must be given as --name NAME"


def test_two_plugins_claiming_one_command_are_refused_naming_both(
    plugin_path: Path, tmp_path: Path
) -> None:
    dist = plugin_path / "hello_again-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-again\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[trackops]\nagain = hello_again\n")
    (plugin_path / "hello_again.py").write_text(
        "from trackops.core.hookspecs import CliCommand, hookimpl\n\n"
        "@hookimpl\n"
        "def trackops_register_commands(register):\n"
        "    register(CliCommand(name='hello', help='another hello', run=lambda a, c: 0))\n"
    )
    clash = {"plugin 'hello'", "plugin 'again'"}

    helped = _run(plugin_path, tmp_path, "--help")
    assert helped.returncode == 0
    said = " ".join(helped.stdout.split())
    assert "Plugin commands are not available: command 'hello' registered by plugin" in said
    assert all(name in said for name in clash), said
    assert "say hello" not in said and "another hello" not in said

    refused = _run(plugin_path, tmp_path, "hello")
    assert refused.returncode == 2
    (line,) = refused.stderr.splitlines()
    assert line.startswith("trackops: error: no command 'hello': plugin commands are not")
    assert all(name in line for name in clash) and "[plugins] disable" in line

    built_in = _run(plugin_path, tmp_path, "list")  # the built-in commands are unaffected
    assert built_in.returncode == 0, built_in.stderr
