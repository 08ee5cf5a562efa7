"""The separately installable example plugin: discovered through its entry point, delivers.

The session fixture ``example_installed`` (tests/conftest.py) installs
``examples/trackops-webhook-notifier`` into a temporary folder on ``sys.path`` and
``PYTHONPATH``, never into this venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer
from plugin_helpers import EXAMPLE_DIST as DIST
from plugin_helpers import make_message
from trackops.core.config import ChannelSettings, Settings
from trackops.core.plugins import PluginChannel, PluginHost


def _settings(url: str, secret: str = "") -> Settings:
    return replace(
        Settings(),
        channels=ChannelSettings(other={"webhook": {"url": url, "secret": secret}}),
    )


def test_a_new_interpreter_discovers_it_through_the_entry_point(
    example_installed: Path, tmp_path: Path
) -> None:
    config = tmp_path / "trackops.toml"
    config.write_text('[channels.webhook]\nurl = "http://127.0.0.1:9/hook"\n', encoding="utf-8")
    script = textwrap.dedent(
        f"""
        import json
        from trackops.core.config import load_settings
        from trackops.core.plugins import PluginHost
        host = PluginHost(load_settings({str(config)!r}))
        info = [p.__dict__ for p in host.describe() if p.name == "webhook"]
        print(json.dumps({{"channels": sorted(host.channels), "webhook": info}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert "webhook" in found["channels"]
    (info,) = found["webhook"]
    assert info["module"] == "trackops_webhook_notifier"
    assert info["distribution"] == DIST
    assert info["version"] == "0.1.0"
    assert info["hooks"] == ["trackops_register_channels"]
    assert info["provides"] == ["channel webhook"]


async def test_delivers_end_to_end_to_a_local_receiver(example_installed: Path) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    host = PluginHost(_settings(str(server.make_url("/hook")), secret="shh"))
    try:
        channel = host.channels["webhook"]
        assert isinstance(channel, PluginChannel) and channel.plugin == "webhook"
        assert host.provider_of("channel", "webhook") == "webhook"
        await channel.send(make_message(channel="webhook", audience="seller"))
    finally:
        await host.aclose()
        await server.close()
    ((headers, body),) = received
    data = json.loads(body)
    assert data["number"] == "RR123456789CN"
    assert data["order"] == "1001"
    assert data["to_status"] == "pick_up"
    assert data["audience"] == "seller"
    from trackops_webhook_notifier import sign

    assert headers["X-Trackops-Signature"] == sign("shh", body)


def test_it_can_be_disabled(example_installed: Path) -> None:
    settings = replace(_settings("http://127.0.0.1:9/hook"), plugins_disable=("webhook",))
    host = PluginHost(settings)
    assert "webhook" not in host.channels
    assert host.warnings == []


def test_it_is_installed_outside_the_developers_venv(example_installed: Path) -> None:
    import importlib.metadata

    dist = importlib.metadata.distribution(DIST)
    where = Path(str(dist.locate_file(""))).resolve()
    assert not where.is_relative_to(Path(sys.prefix).resolve()), where
    assert not where.is_relative_to(example_installed.resolve()), where  # no build in the repo
