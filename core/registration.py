"""Registering numbers: the local checks, and requests that may start before the store is open.

The engine registers through here (``prepare``, then ``Engine.register``). A one-shot command
can go further: ``start`` checks the numbers and sends them to 17TRACK at once, and the engine
(opened meanwhile: SQLAlchemy's import, the store, its migrations) then keeps each batch 17TRACK
answered, ``Engine.register(..., started=registration)``. At 17TRACK's 3 requests per second a
bulk register is bound by the rate limit, so what a command does before its first request is
time added to the whole; opening the store during the rate limit's pauses takes it away.

This module is light on purpose: it imports neither the store nor SQLAlchemy, and aiohttp only
when a registration starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from trackops.core.config import ConfigError, Settings
from trackops.core.wire import (
    ApiErrorBody,
    RegisterItem,
    Rejected,
    TrackApiError,
    validate_number,
)

if TYPE_CHECKING:
    from trackops.core.carriers import CarrierParam
    from trackops.core.client import BatchDone, BatchResult, TrackClient
    from trackops.core.plugins import PluginHost

__all__ = [
    "Prepared",
    "RegisterRequest",
    "Registration",
    "email_problem",
    "open_client",
    "prepare",
    "rejected",
    "start",
]


@dataclass(frozen=True)
class RegisterRequest:
    """One shipment to register: the number, what 17TRACK needs, and what we keep ourselves."""

    number: str
    carrier: int | None = None
    final_carrier: int | None = None
    param: str | None = None
    tag: str | None = None
    order: str | None = None
    email: str | None = None
    name: str | None = None
    auto_detection: bool = True


_EMAIL_RE: Final = re.compile(r"^[^\s@,;:<>()\[\]\\\"]{1,64}@(?:[\w-]{1,63}\.)+[\w-]{2,63}$")


def email_problem(address: str) -> str | None:
    """Why ``address`` cannot be a buyer's email (``None`` when it can): one address,
    ``name@domain.tld``, no spaces, no list separators."""
    if len(address) <= 254 and _EMAIL_RE.match(address):
        return None
    return (
        f"The value of email {address!r} is invalid: expected one address such as buyer@example.com"
    )


def rejected(number: str, code: int, message: str | None = None) -> Rejected:
    """A refusal of ``number`` with 17TRACK's ``code`` (a local check's, or 17TRACK's own)."""
    return Rejected(number=number, error=ApiErrorBody(code=code, message=message or ""))


@dataclass
class Prepared:
    """Requests checked locally: the items to send, the request behind each number, and what
    was refused or noted without spending a request."""

    items: list[RegisterItem] = field(default_factory=list)
    wanted: dict[str, RegisterRequest] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    params: Sequence[CarrierParam] | None = None


def prepare(
    requests: Sequence[RegisterRequest], params: Sequence[CarrierParam] | None = None
) -> Prepared:
    """Check ``requests`` locally (number format, duplicates, buyer email, a carrier's
    required extra parameter and its format) so a request that would fail is not spent.
    ``params``: the plugins' carrier parameters (``PluginHost.carrier_params``)."""
    from trackops.plugins import carriers as carrier_params

    out = Prepared(params=params)
    for req in requests:
        number = req.number.strip()
        try:
            validate_number(number)
        except TrackApiError as exc:
            out.rejected.append(rejected(number, exc.code, exc.message))
            continue
        if number in out.wanted:
            out.notes.setdefault(number, "given more than once; registered once")
            continue
        if req.email:
            email = req.email.strip()
            req = dataclasses.replace(req, email=email)
            problem = email_problem(email)
            if problem is not None:
                out.rejected.append(rejected(number, -18010011, problem))
                continue
        if req.carrier:
            missing = carrier_params.missing_required(req.carrier, req.param, params)
            if missing is not None:
                code = missing.error_code
                hint = carrier_params.explain_error(code, req.carrier, params)
                out.rejected.append(rejected(number, code, hint))
                continue
            if req.param:
                try:
                    formatted = carrier_params.format_extra_param(req.carrier, req.param, params)
                except ValueError as exc:
                    out.rejected.append(rejected(number, -18010011, str(exc)))
                    continue
                req = dataclasses.replace(req, param=formatted)
        out.wanted[number] = req
        out.items.append(
            RegisterItem(
                number=number,
                carrier=req.carrier,
                final_carrier=req.final_carrier,
                auto_detection=True if req.carrier is None and req.auto_detection else None,
                tag=req.tag or req.order or None,
                extra_param=req.param or None,
            )
        )
    return out


async def open_client(settings: Settings) -> TrackClient:
    """A ``TrackClient`` for ``settings``' API, open (the caller closes it)."""
    if not settings.api.key:
        # Said before any request: without a key 17TRACK answers 401, and a wrong base URL
        # would first spend the retries on the network.
        where = f"{settings.path}: " if settings.path else ""
        raise ConfigError(
            f'{where}[api] key is empty: set your 17TRACK API key (or "env:NAME");'
            " `trackops sandbox` gives a local API to try things with"
        )
    from trackops.core.client import TrackClient

    client = TrackClient(settings.api)
    await client.__aenter__()
    return client


class Registration:
    """Register requests on their way to 17TRACK. Each batch 17TRACK answers is held until
    ``finish(keep)`` hands it to ``keep`` (and every later one as it comes). Close it with
    ``aclose()`` (``start`` gives it as an async context manager)."""

    def __init__(
        self,
        prepared: Prepared,
        client: TrackClient,
        plugins: PluginHost | None,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.prepared = prepared
        self.client = client
        """The open client; the registration closes it."""
        self.plugins = plugins
        """The plugin host the checks used (``None`` when no request named a carrier)."""
        self._held: list[tuple[int, BatchResult[Any]]] = []
        self._keep: BatchDone | None = None
        self._task = asyncio.create_task(
            client.register(prepared.items, progress=progress, on_batch=self._answered)
        )

    async def _answered(self, index: int, result: BatchResult[Any]) -> None:
        if self._keep is None:
            self._held.append((index, result))
        else:
            await self._keep(index, result)

    async def finish(self, keep: BatchDone) -> None:
        """Give every answered batch to ``keep``, now and as the rest come; return when the
        last was kept. Raises what the requests raised (the batches answered before are kept)."""
        self._keep = keep
        while self._held:
            await keep(*self._held.pop(0))
        try:
            await self._task
        finally:
            while self._held:  # answered while the last ones were kept
                await keep(*self._held.pop(0))

    async def aclose(self) -> None:
        """Stop what is still being sent (a failure elsewhere) and close the client."""
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task
        await self.client.__aexit__(None, None, None)


@contextlib.asynccontextmanager
async def start(
    settings: Settings,
    requests: Sequence[RegisterRequest],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> AsyncIterator[Registration]:
    """Check ``requests`` and start sending them to 17TRACK; yields the ``Registration``.

    The plugins are loaded only when a request names a carrier (their carrier parameters are
    part of the checks). Use as ``async with start(...) as registration:``, then
    ``Engine.register(requests, started=registration)`` (the service's ``register``).
    """
    plugins: PluginHost | None = None
    params: Sequence[CarrierParam] | None = None
    if any(r.carrier for r in requests):
        from trackops.core.plugins import PluginHost

        plugins = PluginHost(settings)
        params = plugins.carrier_params
    prepared = prepare(requests, params)
    client = await open_client(settings)
    registration = Registration(prepared, client, plugins, progress)
    try:
        yield registration
    finally:
        await registration.aclose()
