"""Built-in plugin ``console``: the ``console`` channel, notifications printed instead of sent.

For trying trackops without a mail server: ``trackops init`` writes a config whose
notifications go to ``console`` until ``[channels.email]`` is set up. Each notification is
written as a short block (headline, recipient, change, latest event, link) and logged at INFO
on the ``trackops.plugins.console`` logger. The channel is always registered; it needs no
settings.

Settings (optional): ``[channels.console] output``: ``"stdout"`` (the default), ``"stderr"``,
or a file path that notifications are appended to (relative to the config file's folder). A
program that draws on the terminal (the dashboard) routes the channel to a file or to stderr
so that printed notifications do not cut through its screen.

Text from outside (events, orders, names) is shown through ``safe_text``: a push can never
drive the terminal.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Final, TextIO

from trackops.core.channels import ChannelError, Message
from trackops.core.config import ConfigError, Settings
from trackops.core.hookspecs import RegisterChannel, hookimpl
from trackops.core.text import safe_text
from trackops.plugins.messages import event_view, headline, status_name

__all__ = ["ConsoleChannel", "format_message", "trackops_register_channels"]

log = logging.getLogger(__name__)

STREAMS: Final = ("stdout", "stderr")
_KEYS: Final = ("output",)


@hookimpl
def trackops_register_channels(register: RegisterChannel, settings: Settings) -> None:
    """Register ``console`` (always), writing where ``[channels.console] output`` says."""
    table = settings.channels.table("console")
    where = f"{settings.path}: " if settings.path else ""
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}[channels.console] unknown key {unknown[0]!r}; expected one of: output"
        )
    output = table.get("output", "stdout")
    if not isinstance(output, str) or not output.strip():
        raise ConfigError(
            f'{where}[channels.console] output: expected "stdout", "stderr" or a file path,'
            f" found {output!r}"
        )
    output = output.strip()
    if output in STREAMS:
        register(ConsoleChannel(stream=output))
        return
    path = Path(output).expanduser()
    if not path.is_absolute() and settings.path is not None:
        path = settings.path.parent / path
    if not path.parent.is_dir():
        raise ConfigError(
            f'{where}[channels.console] output: expected "stdout", "stderr" or a file in an'
            f' existing folder, found "{output}" (no folder {path.parent})'
        )
    register(ConsoleChannel(path=path))


def format_message(message: Message) -> str:
    """The block printed for ``message``: a headline line, then indented details."""
    who = "buyer" if message.audience == "customer" else message.audience
    lines = [f"[{who} {message.recipient} · {message.condition}] {headline(message)}"]
    if message.audience == "report":
        lines += [f"    {line}" for line in (message.body or "").splitlines()]
        lines += [f"    attached: {a.filename}" for a in message.attachments]
    else:
        change = status_name(message.to_status)
        if message.from_status is not None and message.from_status != message.to_status:
            change = f"{status_name(message.from_status)} -> {change}"
        lines.append(f"    status: {change}")
        if message.carrier_name:
            lines.append(f"    carrier: {message.carrier_name}")
        event = event_view(message)
        if event is not None:
            lines.append(f"    latest event: {event}")
        if message.tracking_url:
            lines.append(f"    track: {message.tracking_url}")
    return "\n".join(safe_text(line) for line in lines) + "\n"


class ConsoleChannel:
    """The ``console`` channel: writes each notification to a stream or appends it to a file.

    ``stream`` is ``"stdout"`` or ``"stderr"`` (looked up at each send, so a redirected
    ``sys.stdout`` is honoured); ``path`` a file to append to; ``out`` an open text stream
    (tests, embedding code). Exactly one of them, ``stdout`` when none is given.
    """

    name = "console"

    def __init__(
        self,
        *,
        stream: str | None = None,
        path: Path | None = None,
        out: TextIO | None = None,
    ) -> None:
        if sum(x is not None for x in (stream, path, out)) > 1:
            raise ValueError("give one of stream, path or out")
        if stream is not None and stream not in STREAMS:
            raise ValueError(f"stream must be stdout or stderr, not {stream!r}")
        self.stream = stream or ("stdout" if path is None and out is None else None)
        self.path = path
        self.out = out
        self._lock = asyncio.Lock()

    @property
    def destination(self) -> str:
        """Where notifications go, in words (``stdout``, ``stderr`` or the file path)."""
        if self.path is not None:
            return str(self.path)
        return self.stream or "a stream"

    async def send(self, message: Message) -> None:
        """Write ``message``; a file that cannot be written is a ``ChannelError``."""
        text = format_message(message)
        log.info(
            "notification %s to %s (%s): %s",
            message.notification_id,
            safe_text(message.recipient),
            message.condition,
            safe_text(headline(message)),
        )
        async with self._lock:
            if self.path is not None:
                try:
                    await asyncio.to_thread(_append, self.path, text)
                except OSError as exc:
                    raise ChannelError(
                        f"console output {self.path}: {exc.strerror or exc}", retryable=True
                    ) from None
                return
            out = self.out or (sys.stderr if self.stream == "stderr" else sys.stdout)
            out.write(text)
            out.flush()

    async def aclose(self) -> None:
        """Nothing to release (a file is opened per notification)."""

    def __repr__(self) -> str:
        return f"<ConsoleChannel to {self.destination}>"


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
