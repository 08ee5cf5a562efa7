"""The hooks a trackops plugin may implement (pluggy project ``trackops``).

A plugin is a module (or object) with functions decorated by ``hookimpl`` and named after the
hooks below, exposed through the ``trackops`` entry-point group::

    # pyproject.toml of your plugin
    [project.entry-points.trackops]
    myplugin = "my_package.plugin"

    # my_package/plugin.py
    from trackops.core.hookspecs import hookimpl

    @hookimpl
    def trackops_register_channels(register, settings):
        register(MyChannel(settings.channels.table("mine")))

A hook implementation may accept any subset of the hook's arguments. Hooks that contribute
things take a ``register`` callback; trackops validates each registration, rejects a name that
another plugin already registered (naming both plugins) and remembers which plugin gave what
(``trackops plugins``). ``docs/plugins.md`` documents every hook here with its exact signature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pluggy import HookimplMarker, HookspecMarker

if TYPE_CHECKING:
    from trackops.core.carriers import CarrierParam
    from trackops.core.channels import Channel
    from trackops.core.config import Settings
    from trackops.core.rules import ShipmentFacts
    from trackops.core.status import Transition

__all__ = [
    "PROJECT",
    "Predicate",
    "RegisterCarrierParam",
    "RegisterChannel",
    "RegisterPredicate",
    "hookimpl",
    "hookspec",
]

PROJECT = "trackops"
"""pluggy project name and entry-point group."""

hookspec = HookspecMarker(PROJECT)
"""Marks a hook specification (trackops' own use)."""

hookimpl = HookimplMarker(PROJECT)
"""Marks a plugin's hook implementation: ``@hookimpl def trackops_...``."""

RegisterChannel = Callable[["Channel"], None]
"""``register(channel)``: add a notifier channel (an object following ``channels.Channel``)."""

RegisterCarrierParam = Callable[["CarrierParam"], None]
"""``register(param)``: add one row of carrier extra-parameter knowledge."""

Predicate = Callable[["Transition", "ShipmentFacts"], bool]
"""A custom condition's extra test: ``fn(transition, facts) -> bool``."""

RegisterPredicate = Callable[[str, Predicate], None]
"""``register(name, fn)``: add a predicate that ``[[notifications.conditions]] predicate`` names."""


@hookspec
def trackops_register_channels(register: RegisterChannel, settings: Settings) -> None:
    """Register notifier channels.

    Called once per process, when the plugin host is first asked for its channels (the engine
    does so when it opens). Call ``register(channel)`` for each channel, with an object that
    has a ``name`` (the name used in ``channels = [...]`` in the config), an async
    ``send(message)`` that returns when delivered or raises ``ChannelError``, and an async
    ``aclose()``. Register nothing when your ``[channels.NAME]`` table is not configured.
    Returns nothing.
    """


@hookspec
def trackops_register_carrier_params(register: RegisterCarrierParam) -> None:
    """Register which carriers need an extra parameter (postal code, phone number ...).

    Called once per process, when the host is first asked for carrier params. Call
    ``register(CarrierParam(...))`` once per (carrier, kind). The engine uses them to ask
    for a missing required parameter before registering a number, and to explain
    17TRACK's errors -18010018/-19/-20/-22. Returns nothing.
    """


@hookspec
def trackops_register_predicates(register: RegisterPredicate, settings: Settings) -> None:
    """Register named predicates for custom notification conditions.

    Called once per process, when the host is first asked for its predicates (the engine
    does so when it compiles the rules). ``register(name, fn)``: ``fn(transition, facts)``
    returns True when the condition whose ``predicate = "name"`` should fire. It runs inside
    the rules, so it must be fast and must not do I/O. Returns nothing.
    """


@hookspec
def trackops_transition_committed(
    transition: Transition, shipment: ShipmentFacts
) -> Awaitable[Any] | None:
    """Observe a shipment's transition after it was stored.

    Called by the engine for every applied transition (sync, push), after the transaction
    that stored it committed, whether or not it notifies anyone. ``shipment`` is what the
    rules saw (number, carrier, tag, order, email, countries). May be a plain function or
    return an awaitable (an ``async def``); trackops awaits it, bounded by a timeout. The
    return value is ignored; an exception is logged with the plugin's name and never stops
    the engine or the other observers.
    """
