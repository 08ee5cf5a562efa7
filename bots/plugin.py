"""Plugin ``slack_bot``: the ``/track`` Slack bot and its live-alert channel, wired into trackops.

Registered in pyproject's ``[project.entry-points.trackops]`` like any plugin, so core never
imports ``trackops.bots``. slack_bolt and slack_sdk are imported inside the hooks only: the CLI
loads every plugin to build ``--help`` and must stay fast.

* ``trackops_setup_server``: with ``[slack] signing_secret`` and ``bot_token``, the listener
  answers Slack at ``POST /slack/events``; with ``app_token`` (and ``bot_token``) it also runs
  a Socket Mode client for its lifetime.
* ``trackops_register_channels``: with ``[slack] bot_token``, the ``slack_bot`` channel posts
  seller alerts to the Slack channels subscribed with ``/track subscribe``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trackops.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from aiohttp import web
    from trackops.core.config import Settings
    from trackops.core.hookspecs import RegisterChannel
    from trackops.core.service import Service

__all__ = ["trackops_register_channels", "trackops_setup_server"]


@hookimpl
def trackops_setup_server(app: web.Application, service: Service, settings: Settings) -> None:
    """Mount the bot's routes (HTTP mode) and its Socket Mode client, as ``[slack]`` asks."""
    slack = settings.slack
    if not (slack.bot_token or slack.signing_secret or slack.app_token):
        return
    from trackops.bots.server import mount

    mount(app, service, settings)


@hookimpl
def trackops_register_channels(register: RegisterChannel, settings: Settings) -> None:
    """Register ``slack_bot`` (live alerts to subscribed channels) when a bot token is set."""
    if not settings.slack.bot_token:
        return
    from trackops.bots.alerts import SlackAlertChannel

    register(SlackAlertChannel(settings.slack))
