"""The plugin host: loads plugins once, collects what they register, isolates their failures.

Theory of operation
-------------------
* Loading happens once, lazily, on first use of ``channels``, ``predicates``,
  ``carrier_params``, ``describe()`` or ``notify_transition`` (``load()`` forces it).
  Names in ``[plugins] disable`` are blocked first, then every entry point of the group
  ``trackops`` is imported and registered (the built-ins ``email``, ``slack``, ``discord``,
  ``carriers`` come through that same group), then ``extra_plugins``. Finally
  ``check_pending()`` turns a misspelled hook name into a ``PluginError`` naming the plugin.
* An unknown name in the disable list is a *warning* (logged and kept in ``warnings``), not an
  error: a plugin that was uninstalled but is still listed must not stop trackops from
  starting, and the warning is shown by ``trackops plugins``.
* A plugin that cannot be imported, an invalid registration and a name registered twice are
  ``PluginError``s at start-up: loud and early, with the plugin's name and what to do.
* At run time a plugin never breaks the flow: channels are wrapped so any exception becomes a
  ``ChannelError("plugin NAME failed: ...")`` recorded in the history row, and a raising or
  hanging transition observer is logged and skipped.

Register hooks are called implementation by implementation (not through ``pm.hook``) so that
each registration is attributed to the plugin that made it and one plugin's exception cannot
hide the others' contributions.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import importlib.metadata
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pluggy
from trackops.core import hookspecs
from trackops.core.carriers import CarrierParam
from trackops.core.channels import Channel, ChannelError, Message
from trackops.core.config import ConfigError, Settings
from trackops.core.errors import TrackopsError
from trackops.core.hookspecs import (
    PROJECT,
    CliCommand,
    DashboardScreen,
    DetailPanel,
    PaletteCommand,
    SlackCommand,
    hookimpl,
)

__all__ = [
    "FrontEndExtensions",
    "PluginChannel",
    "PluginError",
    "PluginHost",
    "PluginInfo",
    "Provided",
    "await_me_maybe",
    "hookimpl",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_COMMAND_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
# Textual key names: "L", "ctrl+l", "f6", "ctrl+shift+up" (no spaces, no commas: one key).
_KEY_RE = re.compile(r"^(?:(?:ctrl|shift|alt|meta|super|hyper)\+)*(?:[a-z0-9_]{1,20}|[A-Z])$")
_ACCESS = ("anyone", "admins")
_OBSERVER_TIMEOUT = 10.0


class PluginError(TrackopsError):
    """A plugin could not be loaded or registered something invalid; the message says which."""


async def await_me_maybe(value: T | Awaitable[T]) -> T:
    """``value``, awaited first when it is awaitable (a hook may be sync or async)."""
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass
class PluginInfo:
    """One loaded plugin, as ``trackops plugins`` shows it.

    ``name``: the entry-point (or registration) name, which ``[plugins] disable`` takes;
    ``module``: where its code lives; ``distribution``/``version``: the installed package
    that provides it (``None`` when unknown); ``hooks``: the hooks it implements;
    ``provides``: what it registered ("channel email", "12 carrier params" ...);
    ``errors``: failures of its register hooks (the plugin then provides less).
    """

    name: str
    module: str
    distribution: str | None
    version: str | None
    hooks: list[str] = field(default_factory=list)
    provides: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class Provided(Generic[T_co]):
    """One contribution to a front-end and the plugin that registered it."""

    item: T_co
    plugin: str


@dataclass(frozen=True)
class FrontEndExtensions:
    """What plugins add to the dashboard and the Slack bot, in load order, each with its
    plugin (``Service.extensions()`` hands it to the front-ends)."""

    palette_commands: tuple[Provided[PaletteCommand], ...] = ()
    screens: tuple[Provided[DashboardScreen], ...] = ()
    detail_panels: tuple[Provided[DetailPanel], ...] = ()
    slack_commands: tuple[Provided[SlackCommand], ...] = ()


class _Manager(pluggy.PluginManager):
    """pluggy's manager, also treating an undecorated ``trackops_*`` function as a hook.

    As pytest does for ``pytest_*``: a plugin that forgets ``@hookimpl`` or misspells a hook
    name is then caught by ``check_pending()`` instead of being silently ignored.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(f"{PROJECT}_"):
            if inspect.isfunction(inspect.getattr_static(plugin, name, None)):
                return pluggy.HookimplOpts(
                    wrapper=False,
                    hookwrapper=False,
                    optionalhook=False,
                    tryfirst=False,
                    trylast=False,
                    specname=None,
                )
        return opts


class PluginChannel:
    """A plugin's channel, wrapped so that any failure reads as a ``ChannelError``.

    ``plugin`` is the name of the plugin that registered it; ``inner`` the channel itself.
    """

    def __init__(self, inner: Channel, plugin: str) -> None:
        self.inner = inner
        self.plugin = plugin
        self.name: str = inner.name

    async def send(self, message: Message) -> None:
        """Deliver through the plugin; a non-``ChannelError`` failure is converted."""
        try:
            await self.inner.send(message)
        except ChannelError:
            raise
        except Exception as exc:
            log.exception("plugin %s: channel %s raised while sending", self.plugin, self.name)
            detail = str(exc) or type(exc).__name__
            raise ChannelError(f"plugin {self.plugin} failed: {detail}") from exc

    async def aclose(self) -> None:
        """Close the plugin's channel; a failure is logged, never raised."""
        closer = getattr(self.inner, "aclose", None)
        if closer is None:
            return
        try:
            await await_me_maybe(closer())
        except Exception:
            log.exception("plugin %s: channel %s failed to close", self.plugin, self.name)

    def __repr__(self) -> str:
        return f"<PluginChannel {self.name!r} from {self.plugin!r}>"


class PluginHost:
    """trackops' pluggy ``PluginManager`` and what the plugins registered.

    ``PluginHost(settings)`` loads the ``trackops`` entry points (unless
    ``load_entrypoints=False``) plus ``extra_plugins`` (modules or objects with hookimpls,
    or ``(name, plugin)`` pairs; an unnamed plugin is named by its ``__name__`` or class
    name), skipping the names in ``settings.plugins_disable``. ``observer_timeout`` bounds
    each ``trackops_transition_committed`` call (seconds).

    Loading errors (``PluginError``, or a plugin's ``ConfigError``) are raised by the first
    access and again by every later one.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        load_entrypoints: bool = True,
        extra_plugins: Iterable[object | tuple[str, object]] = (),
        observer_timeout: float = _OBSERVER_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.pm: pluggy.PluginManager = _Manager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.observer_timeout = observer_timeout
        self.warnings: list[str] = []
        """Non-fatal problems found while loading (e.g. an unknown name in the disable list)."""
        self._load_entrypoints = load_entrypoints
        self._extra_plugins = list(extra_plugins)
        self._loaded = False
        self._collected = False
        self._commands: list[CliCommand] | None = None
        self._load_error: Exception | None = None
        self._closed = False
        self._dists: dict[str, importlib.metadata.Distribution] = {}
        self._channels: dict[str, PluginChannel] = {}
        self._predicates: dict[str, Callable[..., bool]] = {}
        self._carrier_params: list[CarrierParam] = []
        self._origin: dict[tuple[str, object], str] = {}
        self._provides: dict[str, list[str]] = {}
        self._errors: dict[str, list[str]] = {}
        self._front: dict[str, list[Provided[Any]]] = {
            "palette": [],
            "screen": [],
            "panel": [],
            "slack": [],
        }

    # ------------------------------------------------------------------ loading

    def load(self) -> None:
        """Load every plugin and collect their registrations (once; later calls do nothing)."""
        self._ensure_collected()

    def _load_modules(self) -> None:
        """Import and register the plugins (once), without asking them for anything yet."""
        if self._load_error is not None:
            raise self._load_error
        if self._loaded:
            return
        self._loaded = True
        try:
            self._load()
        except Exception as exc:  # a half-loaded host must not pass for a loaded one
            self._load_error = exc
            raise

    def _load(self) -> None:
        for name in self.settings.plugins_disable:
            self.pm.set_blocked(name)
        known = self._load_entry_points() if self._load_entrypoints else set()
        for item in self._extra_plugins:
            name, plugin = item if isinstance(item, tuple) else (_plugin_name(item), item)
            known.add(name)
            self._register(name, plugin)
        for name in self.settings.plugins_disable:
            if name not in known:
                message = (
                    f"[plugins] disable: no plugin named {name!r} is installed"
                    f" (installed: {', '.join(sorted(known)) or 'none'})"
                )
                log.warning("%s", message)
                self.warnings.append(message)
        self._check_pending()

    def _ensure_collected(self) -> None:
        """Load, then collect channels, predicates and carrier params (once)."""
        self._load_modules()
        if self._collected:
            return
        self._collected = True
        try:
            self._collect()
        except Exception as exc:
            self._load_error = exc
            raise

    def _load_entry_points(self) -> set[str]:
        # pluggy's load_setuptools_entrypoints stops at the first plugin that fails to import
        # without saying which; this loop is the same walk, naming the culprit.
        names: set[str] = set()
        for dist in importlib.metadata.distributions():
            for ep in dist.entry_points:
                if ep.group != PROJECT:
                    continue
                names.add(ep.name)
                if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                    continue
                try:
                    plugin = ep.load()
                except Exception as exc:
                    raise PluginError(
                        f"plugin {ep.name!r} ({_dist_label(dist)}, {ep.value}) cannot be loaded:"
                        f" {type(exc).__name__}: {exc}; reinstall it, or add {ep.name!r} to"
                        " [plugins] disable"
                    ) from exc
                self._dists[ep.name] = dist
                self._register(ep.name, plugin)
        return names

    def _register(self, name: str, plugin: object) -> None:
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            detail = " ".join(str(exc).split())
            raise PluginError(f"plugin {name!r} is invalid: {detail}") from exc
        except ValueError as exc:
            detail = " ".join(str(exc).split())
            raise PluginError(f"plugin {name!r} cannot be registered: {detail}") from exc

    def _check_pending(self) -> None:
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or repr(exc.plugin)
            unknown = _unknown_hooks(self.pm, exc.plugin)
            hints = []
            for hook in unknown:
                close = difflib.get_close_matches(hook, _hook_names(), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                hints.append(f"{hook!r}{hint}")
            raise PluginError(
                f"plugin {name!r} implements unknown hook {', '.join(hints) or str(exc)};"
                f" trackops' hooks are: {', '.join(_hook_names())}"
            ) from exc

    def _impls(self, hook_name: str) -> list[pluggy.HookImpl]:
        caller: pluggy.HookCaller = getattr(self.pm.hook, hook_name)
        # get_hookimpls() is in registration order (pluggy *calls* them last-first); load
        # order makes "already registered by" name the plugin that really came first.
        return [i for i in caller.get_hookimpls() if not (i.hookwrapper or i.wrapper)]

    def _call_each(self, hook_name: str, kwargs: Mapping[str, Any], bind: Callable) -> None:
        for impl in self._impls(hook_name):
            plugin = impl.plugin_name
            args = {a: bind(plugin) if a == "register" else kwargs[a] for a in impl.argnames}
            try:
                result = impl.function(**args)
                if inspect.isawaitable(result):
                    with contextlib.suppress(Exception):
                        result.close()  # type: ignore[attr-defined]
                    raise PluginError(
                        f"plugin {plugin!r}: {hook_name} must be a plain function, not async"
                    )
            except (PluginError, ConfigError):
                raise
            except Exception as exc:
                log.exception("plugin %s: %s failed", plugin, hook_name)
                self._errors.setdefault(plugin, []).append(
                    f"{hook_name}: {type(exc).__name__}: {exc}"
                )

    def _collect(self) -> None:
        self._call_each(
            "trackops_register_channels", {"settings": self.settings}, self._channel_register
        )
        self._call_each(
            "trackops_register_predicates", {"settings": self.settings}, self._predicate_register
        )
        self._call_each("trackops_register_carrier_params", {}, self._param_register)
        self._call_each("trackops_register_palette_commands", {}, self._palette_register)
        self._call_each("trackops_register_screens", {}, self._screen_register)
        self._call_each("trackops_register_detail_panels", {}, self._panel_register)
        self._call_each("trackops_register_slack_commands", {}, self._slack_register)
        params: dict[str, int] = {}
        for param in self._carrier_params:
            plugin = self._origin[("carrier param", (param.carrier, param.kind))]
            params[plugin] = params.get(plugin, 0) + 1
        for plugin, count in params.items():
            self._provides.setdefault(plugin, []).append(
                f"{count} carrier param{'s' if count != 1 else ''}"
            )

    def _duplicate(self, what: str, key: object, label: str, plugin: str) -> None:
        first = self._origin.get((what, key))
        if first is not None:
            same = " (registered twice by the same plugin)" if first == plugin else ""
            raise PluginError(
                f"{what} {label} registered by plugin {plugin!r} is already registered by"
                f" plugin {first!r}{same}; disable one of them in [plugins] disable"
            )
        self._origin[(what, key)] = plugin

    def _channel_register(self, plugin: str) -> Callable[[Channel], None]:
        def register(channel: Channel) -> None:
            name = getattr(channel, "name", None)
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise PluginError(
                    f"plugin {plugin!r} registered a channel with an invalid name {name!r}"
                    " (expected lower-case letters, digits, '-' or '_', starting with a letter)"
                )
            send = getattr(channel, "send", None)
            if not inspect.iscoroutinefunction(send):
                raise PluginError(
                    f"plugin {plugin!r}: channel {name!r} needs an `async def send(message)`"
                )
            self._duplicate("channel", name, repr(name), plugin)
            self._channels[name] = PluginChannel(channel, plugin)
            self._provides.setdefault(plugin, []).append(f"channel {name}")

        return register

    def _predicate_register(self, plugin: str) -> Callable[[str, Callable[..., bool]], None]:
        def register(name: str, fn: Callable[..., bool]) -> None:
            if not isinstance(name, str) or not name.strip():
                raise PluginError(f"plugin {plugin!r} registered a predicate without a name")
            if not callable(fn):
                raise PluginError(f"plugin {plugin!r}: predicate {name!r} is not callable")
            if inspect.iscoroutinefunction(fn):
                raise PluginError(
                    f"plugin {plugin!r}: predicate {name!r} must be a plain function, not async"
                )
            self._duplicate("predicate", name, repr(name), plugin)
            self._predicates[name] = fn
            self._provides.setdefault(plugin, []).append(f"predicate {name}")

        return register

    def _param_register(self, plugin: str) -> Callable[[CarrierParam], None]:
        def register(param: CarrierParam) -> None:
            if not isinstance(param, CarrierParam):
                raise PluginError(
                    f"plugin {plugin!r} registered {param!r}, expected a"
                    " trackops.core.carriers.CarrierParam"
                )
            key = (param.carrier, param.kind)
            self._duplicate(
                "carrier param", key, f"{param.kind} of carrier {param.carrier}", plugin
            )
            self._carrier_params.append(param)

        return register

    # ------------------------------------------------------------------ front-end registrations

    def _check_common(
        self, plugin: str, item: object, kind: type, what: str, *, label: str = "help"
    ) -> str:
        if not isinstance(item, kind):
            raise PluginError(
                f"plugin {plugin!r} registered {item!r}; expected a"
                f" trackops.core.hookspecs.{kind.__name__}"
            )
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not _COMMAND_RE.match(name):
            raise PluginError(
                f"plugin {plugin!r} registered a {what} with an invalid name {name!r}"
                " (expected lower-case letters, digits or '-', starting with a letter)"
            )
        text = getattr(item, label)
        if not isinstance(text, str) or not text.strip() or "\n" in text or len(text) > 200:
            raise PluginError(
                f"plugin {plugin!r}: {what} {name!r} needs a one-line {label}"
                " (at most 200 characters)"
            )
        return name

    def _check_callable(self, plugin: str, what: str, name: str, fn: object, attr: str) -> None:
        if not callable(fn):
            raise PluginError(f"plugin {plugin!r}: {what} {name!r} has no callable {attr}")

    def _check_key(self, plugin: str, what: str, name: str, key: str | None) -> None:
        if key is None:
            return
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise PluginError(
                f"plugin {plugin!r}: {what} {name!r} has an invalid key {key!r}"
                " (expected one Textual key name such as 'L', 'ctrl+l' or 'f6')"
            )
        self._duplicate("dashboard key", key, repr(key), plugin)

    def _palette_register(self, plugin: str) -> Callable[[PaletteCommand], None]:
        def register(command: PaletteCommand) -> None:
            name = self._check_common(plugin, command, PaletteCommand, "palette command")
            self._check_callable(plugin, "palette command", name, command.run, "run")
            self._duplicate("palette command", name, repr(name), plugin)
            self._check_key(plugin, "palette command", name, command.key)
            self._front["palette"].append(Provided(command, plugin))
            self._provides.setdefault(plugin, []).append(f"palette command {name}")

        return register

    def _screen_register(self, plugin: str) -> Callable[[DashboardScreen], None]:
        def register(screen: DashboardScreen) -> None:
            name = self._check_common(plugin, screen, DashboardScreen, "screen")
            self._check_callable(plugin, "screen", name, screen.make, "make")
            self._duplicate("palette command", name, repr(name), plugin)
            self._check_key(plugin, "screen", name, screen.key)
            self._front["screen"].append(Provided(screen, plugin))
            self._provides.setdefault(plugin, []).append(f"screen {name}")

        return register

    def _panel_register(self, plugin: str) -> Callable[[DetailPanel], None]:
        def register(panel: DetailPanel) -> None:
            name = self._check_common(plugin, panel, DetailPanel, "detail panel", label="title")
            self._check_callable(plugin, "detail panel", name, panel.render, "render")
            self._duplicate("detail panel", name, repr(name), plugin)
            self._front["panel"].append(Provided(panel, plugin))
            self._provides.setdefault(plugin, []).append(f"detail panel {name}")

        return register

    def _slack_register(self, plugin: str) -> Callable[[SlackCommand], None]:
        def register(command: SlackCommand) -> None:
            name = self._check_common(plugin, command, SlackCommand, "/track subcommand")
            self._check_callable(plugin, "/track subcommand", name, command.run, "run")
            if command.access not in _ACCESS:
                raise PluginError(
                    f"plugin {plugin!r}: /track subcommand {name!r} has access"
                    f" {command.access!r}; expected 'anyone' or 'admins'"
                )
            usage = command.usage
            if not isinstance(usage, str) or "\n" in usage or len(usage) > 100:
                raise PluginError(
                    f"plugin {plugin!r}: /track subcommand {name!r} needs a one-line usage"
                )
            self._duplicate("/track subcommand", name, repr(name), plugin)
            self._front["slack"].append(Provided(command, plugin))
            self._provides.setdefault(plugin, []).append(f"/track subcommand {name}")

        return register

    def front_end(self) -> FrontEndExtensions:
        """What the plugins add to the dashboard and the Slack bot."""
        self._ensure_collected()
        return FrontEndExtensions(
            palette_commands=tuple(self._front["palette"]),
            screens=tuple(self._front["screen"]),
            detail_panels=tuple(self._front["panel"]),
            slack_commands=tuple(self._front["slack"]),
        )

    def refuse(self, plugin: str, what: str) -> None:
        """A front-end refused something ``plugin`` registered (e.g. a name of its own
        commands): logged, and shown by ``trackops plugins`` with the plugin's errors."""
        log.error("plugin %s: %s", plugin, what)
        errors = self._errors.setdefault(plugin, [])
        if what not in errors:
            errors.append(what)

    # ------------------------------------------------------------------ what plugins gave

    @property
    def channels(self) -> dict[str, Channel]:
        """Channel name -> channel (wrapped, see ``PluginChannel``)."""
        self._ensure_collected()
        return dict(self._channels)

    @property
    def predicates(self) -> dict[str, Callable[..., bool]]:
        """Predicate name -> ``fn(transition, facts) -> bool`` for custom conditions."""
        self._ensure_collected()
        return dict(self._predicates)

    @property
    def carrier_params(self) -> list[CarrierParam]:
        """Every registered carrier extra parameter, in load order."""
        self._ensure_collected()
        return list(self._carrier_params)

    def provider_of(self, kind: str, name: object) -> str | None:
        """Which plugin registered ``kind`` ("channel", "predicate", "carrier param") ``name``."""
        self._ensure_collected()
        return self._origin.get((kind, name))

    def describe(self) -> list[PluginInfo]:
        """The loaded plugins, in load order, for ``trackops plugins``."""
        self._ensure_collected()
        out: list[PluginInfo] = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:  # blocked
                continue
            dist = self._dists.get(name) or _dist_of_module(getattr(plugin, "__name__", None))
            hooks = sorted(c.name for c in self.pm.get_hookcallers(plugin) or ())
            out.append(
                PluginInfo(
                    name=name,
                    module=getattr(plugin, "__name__", None) or type(plugin).__qualname__,
                    distribution=dist.metadata["Name"] if dist is not None else None,
                    version=dist.version if dist is not None else None,
                    hooks=hooks,
                    provides=list(self._provides.get(name, ())),
                    errors=list(self._errors.get(name, ())),
                )
            )
        return out

    def cli_commands(self, reserved: Iterable[str] = ()) -> list[CliCommand]:
        """The sub-commands plugins contribute (``trackops_register_commands``), in load
        order. A name in ``reserved`` (the built-in commands) or registered twice is a
        ``PluginError`` naming both providers."""
        self.load()
        if self._commands is not None:
            return list(self._commands)
        for name in reserved:
            self._origin[("command", name)] = "trackops"
        commands: list[CliCommand] = []

        def bind(plugin: str) -> Callable[[CliCommand], None]:
            def register(command: CliCommand) -> None:
                if not isinstance(command, CliCommand):
                    raise PluginError(
                        f"plugin {plugin!r} registered {command!r}; expected a CliCommand"
                    )
                if not _COMMAND_RE.match(command.name):
                    raise PluginError(
                        f"plugin {plugin!r} registered a command with an invalid name"
                        f" {command.name!r} (expected lower-case letters, digits or '-')"
                    )
                self._duplicate("command", command.name, repr(command.name), plugin)
                commands.append(command)
                self._provides.setdefault(plugin, []).append(f"command {command.name}")

            return register

        self._call_each("trackops_register_commands", {}, bind)
        self._commands = commands
        return list(commands)

    def setup_server(self, app: Any, service: Any, settings: Settings) -> None:
        """Let plugins extend the listener's application; a failure is logged, not raised."""
        self._load_modules()
        for impl in self._impls("trackops_setup_server"):
            kwargs = {"app": app, "service": service, "settings": settings}
            try:
                impl.function(**{a: kwargs[a] for a in impl.argnames})
            except Exception as exc:
                log.error(
                    "plugin %s: trackops_setup_server failed; running without it: %s: %s",
                    impl.plugin_name,
                    type(exc).__name__,
                    exc,
                )
                self._errors.setdefault(impl.plugin_name, []).append(
                    f"trackops_setup_server: {type(exc).__name__}: {exc}"
                )

    # ------------------------------------------------------------------ run time

    async def notify_transition(self, transition: Any, shipment: Any) -> None:
        """Call every ``trackops_transition_committed`` observer; never raises.

        Observers run concurrently; each is awaited when it returns an awaitable, bounded by
        ``observer_timeout`` seconds. Failures are logged with the plugin's name.
        """
        self.load()
        impls = self._impls("trackops_transition_committed")
        if not impls:
            return
        kwargs = {"transition": transition, "shipment": shipment}

        async def observe(impl: pluggy.HookImpl) -> None:
            try:
                result = impl.function(**{a: kwargs[a] for a in impl.argnames})
                if inspect.isawaitable(result):
                    await asyncio.wait_for(await_me_maybe(result), self.observer_timeout)
            except TimeoutError:
                log.error(
                    "plugin %s: trackops_transition_committed took more than %gs; skipped",
                    impl.plugin_name,
                    self.observer_timeout,
                )
            except Exception:
                log.exception("plugin %s: trackops_transition_committed failed", impl.plugin_name)

        await asyncio.gather(*(observe(i) for i in impls))

    async def aclose(self) -> None:
        """Close every plugin channel (once)."""
        if self._closed:
            return
        self._closed = True
        for channel in self._channels.values():
            await channel.aclose()


# --------------------------------------------------------------------------- helpers


def _hook_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if n.startswith("trackops_"))


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    unknown = []
    for caller in pm.get_hookcallers(plugin) or ():
        if not caller.has_spec():
            unknown.append(caller.name)
    return sorted(unknown)


def _plugin_name(plugin: object) -> str:
    name = getattr(plugin, "__name__", None)
    if isinstance(name, str):
        return name
    return type(plugin).__name__


def _dist_label(dist: importlib.metadata.Distribution) -> str:
    return f"{dist.metadata['Name']} {dist.version}"


def _dist_of_module(module: str | None) -> importlib.metadata.Distribution | None:
    if not module:
        return None
    top = module.split(".")[0]
    try:
        names = importlib.metadata.packages_distributions().get(top) or []
    except Exception:  # metadata of some unrelated distribution is broken
        return None
    for dist_name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.distribution(dist_name)
    return None
