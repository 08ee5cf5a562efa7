"""The plugin host (core/plugins.py) and the guards on the hook specifications."""

from __future__ import annotations

import ast
import asyncio
import importlib.metadata
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from trackops.core import hookspecs
from trackops.core.carriers import CarrierParam
from trackops.core.channels import ChannelError, Message, RecordingChannel
from trackops.core.config import Settings
from trackops.core.plugins import PluginError, PluginHost, await_me_maybe, hookimpl
from trackops.core.rules import ShipmentFacts
from trackops.core.status import Transition
from trackops.core.wire import PackageStatus

ROOT = Path(__file__).resolve().parents[2]

TRANSITION = Transition(
    number="RR123456789CN",
    old_status=PackageStatus.IN_TRANSIT,
    new_status=PackageStatus.DELIVERED,
    first_sync=False,
    status_changed=True,
    stale=False,
    duplicate=False,
    out_of_order=False,
    event_time=None,
)
FACTS = ShipmentFacts(
    number="RR123456789CN",
    carrier=3011,
    tag=None,
    order="1001",
    email="buyer@example.com",
    origin_country=301,
    destination_country=2105,
)
MESSAGE = Message(
    notification_id=1,
    audience="customer",
    channel="memory",
    recipient="buyer@example.com",
    condition="customer",
    condition_kind="default",
    number="RR123456789CN",
)


class Plugin:
    """A plugin object with the given hookimpls as attributes (compared by identity)."""

    def __init__(self, **hooks: Any) -> None:
        self.__dict__.update(hooks)


def channels_plugin(*channels: Any) -> Plugin:
    """A plugin object registering ``channels``."""

    @hookimpl
    def trackops_register_channels(register: Any) -> None:
        for channel in channels:
            register(channel)

    return Plugin(trackops_register_channels=trackops_register_channels)


def host_with(*plugins: Any, settings: Settings | None = None, **kwargs: Any) -> PluginHost:
    return PluginHost(
        settings or Settings(), load_entrypoints=False, extra_plugins=plugins, **kwargs
    )


class BrokenChannel:
    name = "broken"

    async def send(self, message: Message) -> None:
        raise RuntimeError("boom")

    async def aclose(self) -> None:
        raise RuntimeError("cannot close either")


# --------------------------------------------------------------------------- loading


def test_builtins_load_through_the_entry_point_group() -> None:
    host = PluginHost(Settings())
    assert set(host.channels) >= {"email"}
    assert "slack" not in host.channels and "discord" not in host.channels  # not configured
    described = {p.name: p for p in host.describe()}
    assert {"email", "slack", "discord", "carriers"} <= set(described)
    email = described["email"]
    assert email.module == "trackops.plugins.email"
    assert email.distribution == "trackops"
    assert email.version == importlib.metadata.version("trackops")
    assert email.hooks == ["trackops_register_channels"]
    assert email.provides == ["channel email"]
    assert described["carriers"].hooks == ["trackops_register_carrier_params"]
    assert described["carriers"].provides == ["77 carrier params"]
    assert host.provider_of("channel", "email") == "email"


def test_configured_builtins_register_their_channels() -> None:
    settings = replace(
        Settings(),
        channels=replace(
            Settings().channels,
            other={
                "slack": {"webhook_url": "https://hooks.slack.test/x"},
                "discord": {"webhook_url": "https://discord.test/y"},
            },
        ),
    )
    assert {"email", "slack", "discord"} <= set(PluginHost(settings).channels)


def test_disable_list_blocks_a_builtin() -> None:
    host = PluginHost(replace(Settings(), plugins_disable=("email",)))
    assert "email" not in host.channels
    assert "email" not in {p.name for p in host.describe()}
    assert host.warnings == []


def test_unknown_name_in_disable_list_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    host = PluginHost(replace(Settings(), plugins_disable=("emial",)))
    assert "email" in host.channels
    (warning,) = host.warnings
    assert "no plugin named 'emial' is installed" in warning
    assert "email" in warning.split("installed:")[1]
    assert "emial" in caplog.text


def test_loading_is_lazy_and_happens_once() -> None:
    calls = []

    @hookimpl
    def trackops_register_channels(register: Any, settings: Settings) -> None:
        calls.append(settings)
        register(RecordingChannel("memory"))

    host = host_with(Plugin(trackops_register_channels=trackops_register_channels))
    assert calls == []
    assert list(host.channels) == ["memory"]
    assert list(host.channels) == ["memory"]
    host.describe()
    assert len(calls) == 1


def test_misspelled_hook_fails_loudly_naming_the_plugin() -> None:
    @hookimpl
    def trackops_register_channel(register: Any) -> None:  # missing "s"
        pass

    host = host_with(("typo", Plugin(trackops_register_channel=trackops_register_channel)))
    with pytest.raises(PluginError) as caught:
        host.load()
    message = str(caught.value)
    assert "plugin 'typo'" in message
    assert "'trackops_register_channel'" in message
    assert "did you mean 'trackops_register_channels'" in message
    with pytest.raises(PluginError):  # and it stays failed
        _ = host.channels


def test_an_undecorated_misspelled_hook_is_caught_too() -> None:
    def trackops_transition_commited(transition: Any) -> None:  # no @hookimpl, one "t"
        pass

    plugin = Plugin(trackops_transition_commited=trackops_transition_commited)
    with pytest.raises(PluginError, match="did you mean 'trackops_transition_committed'"):
        host_with(("sloppy", plugin)).load()


def test_an_undecorated_hook_still_works() -> None:
    def trackops_register_channels(register: Any) -> None:
        register(RecordingChannel("memory"))

    assert list(
        host_with(Plugin(trackops_register_channels=trackops_register_channels)).channels
    ) == ["memory"]


def test_hookimpl_with_an_argument_the_hook_does_not_have() -> None:
    @hookimpl
    def trackops_register_channels(register: Any, engine: Any) -> None:
        pass

    host = host_with(("bad", Plugin(trackops_register_channels=trackops_register_channels)))
    with pytest.raises(PluginError, match=r"plugin 'bad' is invalid.*engine"):
        host.load()


def test_entry_point_that_cannot_be_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = tmp_path / "broken_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[trackops]\nbroken = no_such_module_for_trackops\n")
    fake = importlib.metadata.PathDistribution(info)
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: iter([fake]))
    with pytest.raises(PluginError) as caught:
        PluginHost(Settings()).load()
    message = str(caught.value)
    assert "plugin 'broken' (broken-plugin 1.0" in message
    assert "ModuleNotFoundError" in message
    assert "[plugins] disable" in message
    # ... and disabling it is the way out.
    assert PluginHost(replace(Settings(), plugins_disable=("broken",))).channels == {}


# --------------------------------------------------------------------------- registration


def test_duplicate_channel_names_are_rejected_naming_both_plugins() -> None:
    host = host_with(
        ("first", channels_plugin(RecordingChannel("memory"))),
        ("second", channels_plugin(RecordingChannel("memory"))),
    )
    with pytest.raises(PluginError) as caught:
        host.load()
    message = str(caught.value)
    assert "channel 'memory'" in message
    assert "plugin 'second'" in message and "plugin 'first'" in message


def test_a_plugin_cannot_take_over_a_builtin_channel() -> None:
    host = PluginHost(
        Settings(), extra_plugins=[("mymail", channels_plugin(RecordingChannel("email")))]
    )
    with pytest.raises(
        PluginError, match="registered by plugin 'mymail' is already registered by plugin 'email'"
    ):
        host.load()


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        (Plugin(name="Bad Name", send=RecordingChannel().send), "invalid name"),
        (Plugin(name="sync", send=lambda message: None), "async def send"),
    ],
)
def test_invalid_channels_are_rejected(channel: Any, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        host_with(("odd", channels_plugin(channel))).load()


def test_a_raising_register_hook_is_recorded_and_others_still_load(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @hookimpl
    def trackops_register_channels(register: Any) -> None:
        raise KeyError("missing setting")

    host = host_with(
        ("flaky", Plugin(trackops_register_channels=trackops_register_channels)),
        ("good", channels_plugin(RecordingChannel("memory"))),
    )
    assert list(host.channels) == ["memory"]
    flaky = next(p for p in host.describe() if p.name == "flaky")
    assert flaky.errors == ["trackops_register_channels: KeyError: 'missing setting'"]
    assert "plugin flaky: trackops_register_channels failed" in caplog.text


def test_predicates_are_registered_and_attributed() -> None:
    def is_vip(transition: Transition, facts: ShipmentFacts) -> bool:
        return (facts.order or "").startswith("VIP")

    @hookimpl
    def trackops_register_predicates(register: Any, settings: Settings) -> None:
        register("vip", is_vip)

    host = host_with(("vips", Plugin(trackops_register_predicates=trackops_register_predicates)))
    assert host.predicates == {"vip": is_vip}
    assert host.provider_of("predicate", "vip") == "vips"
    assert host.predicates["vip"](TRANSITION, replace(FACTS, order="VIP-1")) is True


def test_duplicate_and_invalid_predicates() -> None:
    @hookimpl
    def trackops_register_predicates(register: Any) -> None:
        register("same", lambda t, f: True)

    def plugin() -> Plugin:
        return Plugin(trackops_register_predicates=trackops_register_predicates)

    with pytest.raises(PluginError, match="predicate 'same' registered by plugin 'b'"):
        host_with(("a", plugin()), ("b", plugin())).load()

    @hookimpl
    def trackops_register_predicates_bad(register: Any) -> None:
        register("x", "not callable")

    bad = Plugin(trackops_register_predicates=trackops_register_predicates_bad)
    with pytest.raises(PluginError, match="not callable"):
        host_with(("bad", bad)).load()


def test_carrier_params_from_a_third_party_plugin() -> None:
    param = CarrierParam(999001, "Test Post", "postal_code", "1234", True)

    @hookimpl
    def trackops_register_carrier_params(register: Any) -> None:
        register(param)

    def plugin() -> Plugin:
        return Plugin(trackops_register_carrier_params=trackops_register_carrier_params)

    host = PluginHost(Settings(), extra_plugins=[("testpost", plugin())])
    assert param in host.carrier_params
    assert len(host.carrier_params) == 78
    with pytest.raises(PluginError, match="postal_code of carrier 999001"):
        host_with(("a", plugin()), ("b", plugin())).load()

    @hookimpl
    def trackops_register_carrier_params_bad(register: Any) -> None:
        register({"carrier": 1})

    bad = Plugin(trackops_register_carrier_params=trackops_register_carrier_params_bad)
    with pytest.raises(PluginError, match=r"expected a trackops\.core\.carriers\.CarrierParam"):
        host_with(("bad", bad)).load()


# --------------------------------------------------------------------------- run time


async def test_a_raising_channel_becomes_a_channel_error_and_others_still_send(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = RecordingChannel("memory")
    host = host_with(("shaky", channels_plugin(BrokenChannel())), ("fine", channels_plugin(good)))
    channels = host.channels
    with pytest.raises(ChannelError) as caught:
        await channels["broken"].send(MESSAGE)
    assert caught.value.reason == "plugin shaky failed: boom"
    await channels["memory"].send(MESSAGE)
    assert good.sent == [MESSAGE]
    # A ChannelError from the plugin itself passes through unchanged.
    refusing = host_with(("r", channels_plugin(RecordingChannel("memory", fail_with="550 no"))))
    with pytest.raises(ChannelError, match=r"^550 no$"):
        await refusing.channels["memory"].send(MESSAGE)
    await host.aclose()  # the broken aclose is logged, not raised
    assert "cannot close either" in caplog.text


async def test_aclose_closes_every_channel_once() -> None:
    closed = []

    class Closing(RecordingChannel):
        async def aclose(self) -> None:
            closed.append(self.name)

    host = host_with(("c", channels_plugin(Closing("one"), Closing("two"))))
    assert set(host.channels) == {"one", "two"}
    await host.aclose()
    await host.aclose()
    assert sorted(closed) == ["one", "two"]


async def test_observers_see_transitions_and_a_failing_one_stops_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, Any, Any]] = []

    @hookimpl
    def trackops_transition_committed(transition: Transition, shipment: ShipmentFacts) -> None:
        seen.append(("sync", transition, shipment))

    async def observe_async(transition: Transition) -> None:
        await asyncio.sleep(0)
        seen.append(("async", transition, None))

    def observe_raising(transition: Transition) -> None:
        raise ValueError("observer bug")

    async def observe_raising_async(shipment: ShipmentFacts) -> None:
        raise ValueError("async observer bug")

    def plugin(fn: Any) -> Plugin:
        return Plugin(trackops_transition_committed=hookimpl(fn))

    host = host_with(
        ("raiser", plugin(observe_raising)),
        ("sync", Plugin(trackops_transition_committed=trackops_transition_committed)),
        ("async-raiser", plugin(observe_raising_async)),
        ("async", plugin(observe_async)),
    )
    await host.notify_transition(TRANSITION, FACTS)
    assert sorted(kind for kind, _, _ in seen) == ["async", "sync"]
    assert ("sync", TRANSITION, FACTS) in seen
    assert "plugin raiser: trackops_transition_committed failed" in caplog.text
    assert "plugin async-raiser: trackops_transition_committed failed" in caplog.text


async def test_a_hanging_observer_is_cut_off(caplog: pytest.LogCaptureFixture) -> None:
    never = asyncio.Event()

    async def hang(transition: Transition) -> None:
        await never.wait()

    host = host_with(
        ("slow", Plugin(trackops_transition_committed=hookimpl(hang))),
        observer_timeout=0.05,
    )
    await asyncio.wait_for(host.notify_transition(TRANSITION, FACTS), 5)
    assert "plugin slow: trackops_transition_committed took more than 0.05s" in caplog.text


async def test_await_me_maybe() -> None:
    async def coroutine() -> int:
        return 2

    assert await await_me_maybe(1) == 1
    assert await await_me_maybe(coroutine()) == 2


def test_hookimpl_is_reexported_for_plugin_authors() -> None:
    from trackops.core import plugins

    assert plugins.hookimpl is hookspecs.hookimpl


# --------------------------------------------------------------------------- guards


def _hookspec_signatures() -> dict[str, str]:
    """Hook name -> its exact signature as written in hookspecs.py."""
    tree = ast.parse((ROOT / "core" / "hookspecs.py").read_text(encoding="utf-8"))
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("trackops_"):
            returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
            out[node.name] = f"{node.name}({ast.unparse(node.args)}){returns}"
    return out


def test_every_hookspec_is_a_real_hook() -> None:
    signatures = _hookspec_signatures()
    assert signatures, "no hooks found in core/hookspecs.py"
    for name in signatures:
        assert hasattr(getattr(hookspecs, name), "trackops_spec"), f"{name} lacks @hookspec"
        assert getattr(hookspecs, name).__doc__, f"{name} has no docstring"


def _documented_signatures() -> set[str]:
    """Every ``def trackops_...`` in the guide's Python blocks, unparsed (layout-independent)."""
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    found = set()
    for block in re.findall(r"```python\n(.*?)```", docs, flags=re.DOTALL):
        try:
            tree = ast.parse(block)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("trackops_"):
                returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
                found.add(f"{node.name}({ast.unparse(node.args)}){returns}")
    return found


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    documented = _documented_signatures()
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    for name, signature in _hookspec_signatures().items():
        assert signature in documented, f"docs/plugins.md lacks `{signature}`"
        assert f"### {name}" in docs, f"docs/plugins.md has no section for {name}"


def test_every_hook_has_a_test() -> None:
    sources = "\n".join(
        path.read_text(encoding="utf-8") for path in (ROOT / "tests").rglob("test_*.py")
    )
    for name in _hookspec_signatures():
        assert f"def {name}(" in sources, f"no test implements {name}"


# --------------------------------------------------------------------------- CLI commands


def _command_plugin(name: str):
    from trackops.core.hookspecs import CliCommand

    class CommandPlugin:
        @hookimpl
        def trackops_register_commands(self, register) -> None:
            register(CliCommand(name=name, help=f"the {name} command", run=lambda a, c: 0))

    return CommandPlugin()


def test_plugins_add_cli_commands_and_duplicates_are_refused_naming_both() -> None:
    host = host_with(("one", _command_plugin("hello")))
    (command,) = host.cli_commands(reserved=["list", "status"])
    assert (command.name, command.help) == ("hello", "the hello command")
    assert "command hello" in next(p for p in host.describe() if p.name == "one").provides

    twice = host_with(("one", _command_plugin("hello")), ("two", _command_plugin("hello")))
    with pytest.raises(PluginError) as caught:
        twice.cli_commands()
    assert "plugin 'two'" in str(caught.value) and "plugin 'one'" in str(caught.value)

    builtin = host_with(("one", _command_plugin("list")))
    with pytest.raises(PluginError, match="already registered by plugin 'trackops'"):
        builtin.cli_commands(reserved=["list"])


# --------------------------------------------------------------------------- front-end hooks


def _front_end_plugin(suffix: str = "", key: str | None = "L") -> Any:
    from trackops.core.hookspecs import (
        DashboardScreen,
        DetailPanel,
        PaletteCommand,
        SlackCommand,
    )

    class FrontEndPlugin:
        @hookimpl
        def trackops_register_palette_commands(self, register: Any) -> None:
            register(PaletteCommand(f"late{suffix}", "tag as late", lambda ctx: None, key=key))

        @hookimpl
        def trackops_register_screens(self, register: Any) -> None:
            register(DashboardScreen(f"late-list{suffix}", "late parcels", lambda ctx: None))

        @hookimpl
        def trackops_register_detail_panels(self, register: Any) -> None:
            register(DetailPanel(f"link{suffix}", "Carrier page", lambda detail, service: ""))

        @hookimpl
        def trackops_register_slack_commands(self, register: Any) -> None:
            register(SlackCommand(f"late{suffix}", "late parcels", lambda ctx: "", "[DAYS]"))

    return FrontEndPlugin()


def test_front_end_registrations_are_collected_with_their_plugin() -> None:
    host = host_with(("late", _front_end_plugin()))
    front = host.front_end()
    assert [(p.item.name, p.item.key, p.plugin) for p in front.palette_commands] == [
        ("late", "L", "late")
    ]
    assert [(p.item.name, p.plugin) for p in front.screens] == [("late-list", "late")]
    assert [(p.item.title, p.plugin) for p in front.detail_panels] == [("Carrier page", "late")]
    (slack,) = front.slack_commands
    assert (slack.item.name, slack.item.usage, slack.item.access) == ("late", "[DAYS]", "anyone")
    provides = next(p for p in host.describe() if p.name == "late").provides
    assert provides == [
        "palette command late",
        "screen late-list",
        "detail panel link",
        "/track subcommand late",
    ]


@pytest.mark.parametrize(
    ("second", "what"),
    [
        (lambda: _front_end_plugin(key="K"), "palette command 'late'"),
        (lambda: _front_end_plugin(suffix="-2"), "dashboard key 'L'"),
    ],
)
def test_two_plugins_claiming_one_front_end_name_are_refused_at_load(
    second: Any, what: str
) -> None:
    host = host_with(("one", _front_end_plugin()), ("two", second()))
    with pytest.raises(PluginError) as caught:
        host.load()
    message = str(caught.value)
    assert message.startswith(what)
    assert "plugin 'two'" in message and "already registered by plugin 'one'" in message


def test_slack_subcommands_of_two_plugins_collide_too() -> None:
    from trackops.core.hookspecs import SlackCommand

    def plugin() -> Any:
        @hookimpl
        def trackops_register_slack_commands(register: Any) -> None:
            register(SlackCommand("eta", "estimated arrival", lambda ctx: ""))

        return Plugin(trackops_register_slack_commands=trackops_register_slack_commands)

    with pytest.raises(PluginError, match="/track subcommand 'eta' registered by plugin 'b'"):
        host_with(("a", plugin()), ("b", plugin())).load()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda h: h.PaletteCommand("Bad Name", "x", print), "invalid name 'Bad Name'"),
        (lambda h: h.PaletteCommand("ok", "", print), "needs a one-line help"),
        (lambda h: h.PaletteCommand("ok", "two\nlines", print), "needs a one-line help"),
        (lambda h: h.PaletteCommand("ok", "x", None), "has no callable run"),
        (lambda h: h.PaletteCommand("ok", "x", print, key="ctrl+l,q"), "invalid key"),
        (lambda h: h.DetailPanel("ok", "", print), "needs a one-line title"),
        (lambda h: h.SlackCommand("ok", "x", print, access="root"), "expected 'anyone' or"),
        (lambda h: h.CliCommand("ok", "x", print), "expected a trackops.core.hookspecs"),
    ],
)
def test_invalid_front_end_registrations_are_refused(make: Any, message: str) -> None:
    item = make(hookspecs)
    hook = {
        "DetailPanel": "trackops_register_detail_panels",
        "SlackCommand": "trackops_register_slack_commands",
    }.get(type(item).__name__, "trackops_register_palette_commands")

    def register_it(register: Any) -> None:
        register(item)

    register_it.__name__ = hook
    with pytest.raises(PluginError, match=re.escape(message)):
        host_with(("bad", Plugin(**{hook: hookimpl(register_it)}))).load()


def test_no_plugins_no_extensions_and_refusals_are_kept() -> None:
    host = host_with()
    assert host.front_end() == hookspecs_front_end_empty()
    host.refuse("late", "/track subcommand 'list' is one of the bot's own; refused")
    host.refuse("late", "/track subcommand 'list' is one of the bot's own; refused")
    assert host._errors["late"] == ["/track subcommand 'list' is one of the bot's own; refused"]


def hookspecs_front_end_empty() -> Any:
    from trackops.core.plugins import FrontEndExtensions

    return FrontEndExtensions()
