"""Configuration: TOML in, typed ``Settings`` out, with errors a person can act on.

Lookup order for the file (see ``resolve_config_path``): ``--config FILE``, else
``$TRACKOPS_CONFIG``, else ``./trackops.toml``. A missing default file gives the defaults unless
the caller requires a file; a missing file's error names every place that was tried. A value
``"env:NAME"`` is read from the environment variable NAME. A relative SQLite path in
``[store] url`` is relative to the config file's folder, not to the current directory.

Every error is a ``ConfigError`` whose message names the file, the key, what was found and what
was expected, e.g. ``trackops.toml: [api] rate_limit: expected a number > 0, found "fast"``.
Secrets are held in ``Secret`` so that a repr or a log line never shows them.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import string
import tomllib
import urllib.parse
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tomli_w
from trackops.core.errors import TrackopsError
from trackops.core.wire import PackageStatus

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "ApiSettings",
    "ChannelSettings",
    "ConditionSettings",
    "ConfigError",
    "CustomerSettings",
    "EmailChannelSettings",
    "NotificationSettings",
    "ReportSettings",
    "Secret",
    "SellerSettings",
    "Settings",
    "SlackBotSettings",
    "StoreSettings",
    "WebhookSettings",
    "example_config_text",
    "load_settings",
    "resolve_config_path",
    "write_config",
]

DEFAULT_CONFIG_NAME: Final = "trackops.toml"
DEFAULT_API_BASE_URL: Final = "https://api.17track.net/track/v1"


class ConfigError(TrackopsError, ValueError):
    """A configuration problem, with a message naming file, key, found and expected."""


class Secret:
    """A string that never shows itself in ``repr``/``str``; ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value, for the one place that needs it (a header, a login)."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__


@dataclass(frozen=True)
class ApiSettings:
    """``[api]``: the 17TRACK key, endpoint and request rate."""

    key: Secret = field(default_factory=lambda: Secret(""))
    base_url: str = DEFAULT_API_BASE_URL
    rate_limit: float = 3.0
    timeout: float = 30.0
    max_retries: int = 4


@dataclass(frozen=True)
class StoreSettings:
    """``[store]``: ``sqlite:///PATH`` (default) or ``postgresql://USER@HOST/DB``."""

    url: str = "sqlite:///trackops.db"


@dataclass(frozen=True)
class WebhookSettings:
    """``[webhook]``: where the push listener binds and how it guards itself."""

    host: str = "127.0.0.1"
    port: int = 8017
    path: str = "/webhooks/17track"
    max_body_bytes: int = 1_048_576
    resync_hours: float = 0.0
    inbox_retention_days: float = 7.0
    body_timeout: float = 10.0
    header_timeout: float = 15.0
    store_timeout: float = 5.0
    stall_seconds: float = 600.0
    trusted_proxies: tuple[str, ...] = ()
    allow_networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class CustomerSettings:
    """``[notifications.customer]``: one switch for all buyer notifications."""

    enabled: bool = True
    channels: tuple[str, ...] = ("email",)


@dataclass(frozen=True)
class SellerSettings:
    """``[notifications.seller]``: the one seller recipient and the default alert condition."""

    enabled: bool = True
    email: str = ""
    daily_limit: int = 100
    channels: tuple[str, ...] = ("email",)
    statuses: tuple[PackageStatus, ...] = (PackageStatus.ALERT, PackageStatus.UNDELIVERED)


@dataclass(frozen=True)
class ConditionSettings:
    """One ``[[notifications.conditions]]``: a custom trigger with its own channels.

    Empty tuples / ``None`` mean "any". ``audience`` is ``customer`` or ``seller``.
    ``recipients`` overrides who receives it (default: the buyer or the seller recipient).
    """

    name: str
    audience: str = "seller"
    channels: tuple[str, ...] = ("email",)
    from_statuses: tuple[PackageStatus, ...] = ()
    to_statuses: tuple[PackageStatus, ...] = ()
    carriers: tuple[int, ...] = ()
    origin_countries: tuple[int, ...] = ()
    destination_countries: tuple[int, ...] = ()
    tag_pattern: str | None = None
    order_pattern: str | None = None
    recipients: tuple[str, ...] = ()
    predicate: str | None = None


@dataclass(frozen=True)
class ReportSettings:
    """``[notifications.reports]``: recipients of weekly/monthly reports and exports."""

    recipients: tuple[str, ...] = ()
    channels: tuple[str, ...] = ("email",)


@dataclass(frozen=True)
class NotificationSettings:
    """``[notifications]`` and its sub-tables."""

    stale_after_days: float = 7.0
    timezone: str = "UTC"
    tracking_url: str = "https://t.17track.net/en#nums={number}"
    max_attempts: int = 3
    customer: CustomerSettings = field(default_factory=CustomerSettings)
    seller: SellerSettings = field(default_factory=SellerSettings)
    conditions: tuple[ConditionSettings, ...] = ()
    reports: ReportSettings = field(default_factory=ReportSettings)

    @property
    def zone(self) -> ZoneInfo:
        """The configured time zone (validated at load)."""
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class EmailChannelSettings:
    """``[channels.email]``: SMTP. No login when ``username`` is empty."""

    host: str = "localhost"
    port: int = 25
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    starttls: bool = False
    ssl: bool = False
    sender: str = "trackops@localhost"
    templates: str = ""
    timeout: float = 30.0


@dataclass(frozen=True)
class ChannelSettings:
    """``[channels.*]``: settings of every notifier channel.

    ``email`` is typed; the others are kept as plain tables for their plugins to read
    (``slack`` has ``webhook_url`` or ``bot_token`` + ``channel``; ``discord`` has
    ``webhook_url``); ``"env:NAME"`` values are already resolved.
    """

    email: EmailChannelSettings = field(default_factory=EmailChannelSettings)
    other: dict[str, dict[str, Any]] = field(default_factory=dict)

    def table(self, name: str) -> dict[str, Any]:
        """The raw table ``[channels.NAME]`` (empty when absent)."""
        return self.other.get(name, {})


@dataclass(frozen=True)
class SlackBotSettings:
    """``[slack]``: the Slack bot (HTTP mode with signing secret + bot token)."""

    signing_secret: Secret = field(default_factory=lambda: Secret(""))
    bot_token: Secret = field(default_factory=lambda: Secret(""))
    app_token: Secret = field(default_factory=lambda: Secret(""))
    admins: tuple[str, ...] = ()
    api_base_url: str = "https://slack.com/api/"

    @property
    def enabled(self) -> bool:
        """True when the bot can answer over HTTP (signing secret and bot token set)."""
        return bool(self.signing_secret) and bool(self.bot_token)


@dataclass(frozen=True)
class Settings:
    """All of trackops' settings. ``path`` is the file they came from (None for defaults)."""

    api: ApiSettings = field(default_factory=ApiSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    channels: ChannelSettings = field(default_factory=ChannelSettings)
    slack: SlackBotSettings = field(default_factory=SlackBotSettings)
    plugins_disable: tuple[str, ...] = ()
    path: Path | None = None


# --------------------------------------------------------------------------- loading


def resolve_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--config`` if given, else ``$TRACKOPS_CONFIG``, else ``./trackops.toml``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("TRACKOPS_CONFIG")
    if env:
        return Path(env)
    return Path(DEFAULT_CONFIG_NAME)


_ENV_RE = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


class _Reader:
    """Reads one table, tracking the key path for messages and rejecting unknown keys."""

    def __init__(
        self,
        source: str,
        table: dict[str, Any],
        where: str,
        secrets: set[str],
        unset: list[str] | None = None,
    ) -> None:
        self.source = source
        self.table = table
        self.where = where
        self.secrets = secrets
        self.unset = unset
        """When a list: a secret whose ``env:NAME`` is not set is read as empty and named here
        (a reading command needs no secret); else it is a ``ConfigError``."""
        self.seen: set[str] = set()

    def fail(self, key: str, found: Any, expected: str) -> ConfigError:
        label = f"{self.where} {key}" if self.where else key
        shown = "(hidden)" if key in self.secrets else _describe(found)
        return ConfigError(f"{self.source}: {label}: expected {expected}, found {shown}")

    def raw(self, key: str, *, may_be_unset: bool = False) -> Any:
        """The value at ``key``, ``env:NAME`` resolved. ``may_be_unset`` (a secret): an unset
        NAME reads as absent when the caller allowed it (``unset``), else it is an error."""
        self.seen.add(key)
        value = self.table.get(key)
        if isinstance(value, str):
            match = _ENV_RE.match(value)
            if match:
                name = match.group(1)
                if name not in os.environ:
                    label = f"{self.where} {key}" if self.where else key
                    if may_be_unset and self.unset is not None:
                        self.unset.append(label)
                        return None
                    raise ConfigError(
                        f"{self.source}: {label}: expected environment variable {name} to be set"
                        f' (the config says "env:{name}"); it is not'
                    )
                return os.environ[name]
        return value

    def string(self, key: str, default: str) -> str:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(key, value, "a string")
        return value

    def secret(self, key: str) -> Secret:
        self.secrets.add(key)
        value = self.raw(key, may_be_unset=True)
        if value is None:
            return Secret("")
        if not isinstance(value, str):
            raise self.fail(key, value, "a string")
        return Secret(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise self.fail(key, value, "true or false")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0, strict: bool = True) -> float:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        # NaN and infinity pass every comparison test or none; they are never a setting.
        ok = ok and math.isfinite(value)
        if not ok or (value <= minimum if strict else value < minimum):
            bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
            raise self.fail(key, self.table.get(key), f"a number {bound}")
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int = 0, maximum: int = 2**31) -> int:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            raise self.fail(key, self.table.get(key), f"a whole number from {minimum} to {maximum}")
        return value

    def str_list(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, value, "a list of strings")
        return tuple(value)

    def int_list(self, key: str) -> tuple[int, ...]:
        value = self.raw(key)
        if value is None:
            return ()
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise self.fail(key, value, "a list of whole numbers")
        return tuple(value)

    def statuses(self, key: str, default: tuple[PackageStatus, ...]) -> tuple[PackageStatus, ...]:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, str | int):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(key, value, "a list of status names")
        out = []
        for item in value:
            try:
                out.append(PackageStatus.parse(item))
            except ValueError:
                names = ", ".join(s.slug for s in PackageStatus)
                raise self.fail(key, item, f"status names among {names}") from None
        return tuple(out)

    def sub(self, key: str) -> _Reader:
        value = self.raw(key)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.fail(key, value, "a table")
        where = f"{self.where.rstrip(']')}.{key}]" if self.where else f"[{key}]"
        return _Reader(self.source, value, where, self.secrets, self.unset)

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.seen)
        if unknown:
            place = f"{self.where} " if self.where else ""
            raise ConfigError(
                f"{self.source}: {place}unknown key {unknown[0]!r}; expected one of: "
                f"{', '.join(sorted(self.seen))}"
            )


_STORE_URL_RE = re.compile(r"^(sqlite|postgresql|postgres)(\+[a-z0-9]+)?://", re.IGNORECASE)
_KNOWN_AUDIENCES: Final = ("customer", "seller")
# "default"/"custom" are history filters; "customer"/"seller" name the default conditions.
_RESERVED_CONDITION_NAMES: Final = ("default", "custom", "customer", "seller")


def _read_condition(reader: _Reader, index: int) -> ConditionSettings:
    name = reader.string("name", "")
    if not name:
        raise reader.fail("name", reader.table.get("name"), "a non-empty condition name")
    where = f"[[notifications.conditions]] {name!r}"
    reader.where = where
    audience = reader.string("audience", "seller")
    if audience not in _KNOWN_AUDIENCES:
        raise reader.fail("audience", audience, "customer or seller")
    patterns: dict[str, str | None] = {}
    for key in ("tag_pattern", "order_pattern"):
        pattern = reader.string(key, "") or None
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise reader.fail(key, pattern, f"a valid regular expression ({exc})") from None
        patterns[key] = pattern
    condition = ConditionSettings(
        name=name,
        audience=audience,
        channels=reader.str_list("channels", ("email",)),
        from_statuses=reader.statuses("from", ()),
        to_statuses=reader.statuses("to", ()),
        carriers=reader.int_list("carriers"),
        origin_countries=reader.int_list("origin_countries"),
        destination_countries=reader.int_list("destination_countries"),
        tag_pattern=patterns["tag_pattern"],
        order_pattern=patterns["order_pattern"],
        recipients=reader.str_list("recipients", ()),
        predicate=reader.string("predicate", "") or None,
    )
    reader.done()
    return condition


_ADDRESS_RE: Final = re.compile(r"^[^\s@,;:<>()\[\]\\\"]{1,64}@[^\s@,;:<>()\[\]\\\"]{1,253}$")


def _address_problem(value: str) -> bool:
    """True unless ``value`` is one email address, bare or as ``Name <address>``."""
    import email.utils  # only when an address is configured

    _, address = email.utils.parseaddr(value)
    if not address or len(address) > 254 or not _ADDRESS_RE.match(address):
        return True
    domain = address.rpartition("@")[2]
    return domain.startswith(".") or domain.endswith(".") or ".." in domain


def _check_tracking_url(reader: _Reader, url: str) -> None:
    """``tracking_url`` may name ``{number}`` (and nothing else) and must format."""
    expected = "an http(s) URL whose only placeholder is {number}, e.g. https://t.17track.net/en#nums={number}"
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(url) if name is not None]
        url.format(number="RR123456789CN")
    except (ValueError, KeyError, IndexError, AttributeError):
        raise reader.fail("tracking_url", url, expected) from None
    if any(name != "number" for name in fields) or not url.startswith(("http://", "https://")):
        raise reader.fail("tracking_url", url, expected)


def _check_url(reader: _Reader, key: str, value: Any) -> None:
    """A channel's URL setting: a string http(s) URL with a host and no spaces. The message
    never shows the value: a webhook URL carries its secret."""
    expected = "an http:// or https:// URL with no spaces"
    if value is None or value == "":
        return
    reader.secrets.add(key)
    if not isinstance(value, str):
        raise reader.fail(key, value, expected)
    try:
        parsed = urllib.parse.urlsplit(value.strip())
    except ValueError:
        raise reader.fail(key, value, expected) from None
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.hostname
        or any(c.isspace() for c in value.strip())
    ):
        raise reader.fail(key, value, expected)


def settings_from_dict(
    data: dict[str, Any], source: str = "<config>", *, unset_secrets: bool = False
) -> Settings:
    """Build ``Settings`` from an already parsed TOML document; ``ConfigError`` on bad input.

    ``unset_secrets``: a secret given as ``env:NAME`` whose variable is not set is read as
    empty instead of refused (the reading commands, which send nothing and need no key)."""
    secrets: set[str] = set()
    root = _Reader(source, data, "", secrets, [] if unset_secrets else None)

    api_r = root.sub("api")
    api = ApiSettings(
        key=api_r.secret("key"),
        base_url=api_r.string("base_url", DEFAULT_API_BASE_URL).rstrip("/"),
        rate_limit=api_r.number("rate_limit", 3.0),
        timeout=api_r.number("timeout", 30.0),
        max_retries=api_r.integer("max_retries", 4, maximum=20),
    )
    if not api.base_url.startswith(("http://", "https://")):
        raise api_r.fail("base_url", api.base_url, "an http:// or https:// URL")
    api_r.done()

    store_r = root.sub("store")
    store = StoreSettings(url=store_r.string("url", StoreSettings.url))
    if not _STORE_URL_RE.match(store.url):
        raise store_r.fail("url", store.url, "sqlite:///PATH or postgresql://USER@HOST/DB")
    store_r.done()

    hook_r = root.sub("webhook")
    webhook = WebhookSettings(
        host=hook_r.string("host", WebhookSettings.host),
        port=hook_r.integer("port", WebhookSettings.port, maximum=65535),
        path=hook_r.string("path", WebhookSettings.path),
        max_body_bytes=hook_r.integer("max_body_bytes", WebhookSettings.max_body_bytes, minimum=1),
        resync_hours=hook_r.number("resync_hours", 0.0, strict=False),
        inbox_retention_days=hook_r.number(
            "inbox_retention_days", WebhookSettings.inbox_retention_days
        ),
        body_timeout=hook_r.number("body_timeout", 10.0),
        header_timeout=hook_r.number("header_timeout", WebhookSettings.header_timeout),
        store_timeout=hook_r.number("store_timeout", WebhookSettings.store_timeout),
        stall_seconds=hook_r.number("stall_seconds", WebhookSettings.stall_seconds),
        trusted_proxies=hook_r.str_list("trusted_proxies", ()),
        allow_networks=hook_r.str_list("allow_networks", ()),
    )
    if not webhook.path.startswith("/"):
        raise hook_r.fail("path", webhook.path, "a path starting with /")
    for key in ("trusted_proxies", "allow_networks"):
        for entry in getattr(webhook, key):
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise hook_r.fail(
                    key, entry, "IP addresses or networks such as 10.0.0.0/8 or 2001:db8::/32"
                ) from None
    hook_r.done()

    notes_r = root.sub("notifications")
    timezone = notes_r.string("timezone", "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise notes_r.fail("timezone", timezone, "an IANA time zone such as Europe/Paris") from None
    cust_r = notes_r.sub("customer")
    customer = CustomerSettings(
        enabled=cust_r.boolean("enabled", True), channels=cust_r.str_list("channels", ("email",))
    )
    cust_r.done()
    sell_r = notes_r.sub("seller")
    seller = SellerSettings(
        enabled=sell_r.boolean("enabled", True),
        email=sell_r.string("email", ""),
        daily_limit=sell_r.integer("daily_limit", 100, minimum=0, maximum=1_000_000),
        channels=sell_r.str_list("channels", ("email",)),
        statuses=sell_r.statuses("statuses", (PackageStatus.ALERT, PackageStatus.UNDELIVERED)),
    )
    sell_r.done()
    raw_conditions = notes_r.raw("conditions") or []
    if not isinstance(raw_conditions, list):
        raise notes_r.fail("conditions", raw_conditions, "an array of tables [[...]]")
    conditions = []
    names: set[str] = set()
    for index, item in enumerate(raw_conditions, start=1):
        if not isinstance(item, dict):
            raise notes_r.fail("conditions", item, "an array of tables [[...]]")
        reader = _Reader(
            source, item, f"[[notifications.conditions]] #{index}", secrets, root.unset
        )
        condition = _read_condition(reader, index)
        if condition.name in names or condition.name in _RESERVED_CONDITION_NAMES:
            raise ConfigError(
                f"{source}: [[notifications.conditions]] name {condition.name!r}: expected a "
                "unique name (not default, custom, customer or seller), found it twice or reserved"
            )
        names.add(condition.name)
        conditions.append(condition)
    rep_r = notes_r.sub("reports")
    reports = ReportSettings(
        recipients=rep_r.str_list("recipients", ()),
        channels=rep_r.str_list("channels", ("email",)),
    )
    rep_r.done()
    notifications = NotificationSettings(
        stale_after_days=notes_r.number("stale_after_days", 7.0),
        timezone=timezone,
        tracking_url=notes_r.string("tracking_url", NotificationSettings.tracking_url),
        max_attempts=notes_r.integer("max_attempts", 3, minimum=1, maximum=50),
        customer=customer,
        seller=seller,
        conditions=tuple(conditions),
        reports=reports,
    )
    _check_tracking_url(notes_r, notifications.tracking_url)
    if seller.email and _address_problem(seller.email):
        raise sell_r.fail("email", seller.email, "an email address such as ops@shop.example")
    if "email" in reports.channels:
        for address in reports.recipients:
            if _address_problem(address):
                raise rep_r.fail("recipients", address, "email addresses such as ops@shop.example")
    notes_r.done()

    chan_r = root.sub("channels")
    mail_r = chan_r.sub("email")
    email = EmailChannelSettings(
        host=mail_r.string("host", "localhost"),
        port=mail_r.integer("port", 25, minimum=1, maximum=65535),
        username=mail_r.string("username", ""),
        password=mail_r.secret("password"),
        starttls=mail_r.boolean("starttls", False),
        ssl=mail_r.boolean("ssl", False),
        sender=mail_r.string("sender", EmailChannelSettings.sender),
        templates=mail_r.string("templates", ""),
        timeout=mail_r.number("timeout", 30.0),
    )
    if _address_problem(email.sender):
        raise mail_r.fail("sender", email.sender, "an email address such as trackops@shop.example")
    if email.ssl and email.starttls:
        raise mail_r.fail("starttls", True, "starttls and ssl not both true (ssl is implicit TLS)")
    mail_r.done()
    other: dict[str, dict[str, Any]] = {}
    for name in list(chan_r.table):
        if name == "email":
            continue
        sub = chan_r.sub(name)
        resolved: dict[str, Any] = {}
        for key in sub.table:
            resolved[key] = sub.raw(key, may_be_unset=True)  # webhook URLs hold secrets
            if key == "webhook_url" or key.endswith("_url"):
                _check_url(sub, key, resolved[key])
        other[name] = resolved
    chan_r.done()
    channels = ChannelSettings(email=email, other=other)

    slack_r = root.sub("slack")
    slack = SlackBotSettings(
        signing_secret=slack_r.secret("signing_secret"),
        bot_token=slack_r.secret("bot_token"),
        app_token=slack_r.secret("app_token"),
        admins=slack_r.str_list("admins", ()),
        api_base_url=slack_r.string("api_base_url", SlackBotSettings.api_base_url),
    )
    slack_r.done()

    plug_r = root.sub("plugins")
    disable = plug_r.str_list("disable", ())
    plug_r.done()
    root.done()

    return Settings(
        api=api,
        store=store,
        webhook=webhook,
        notifications=notifications,
        channels=channels,
        slack=slack,
        plugins_disable=disable,
    )


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    required: bool = False,
    unset_secrets: bool = False,
) -> Settings:
    """Load settings from ``path`` (resolved with ``resolve_config_path``).

    A missing file gives the defaults unless ``required`` (or the path was given explicitly
    or through ``$TRACKOPS_CONFIG``), in which case it is a ``ConfigError``.
    ``unset_secrets``: see ``settings_from_dict``.
    """
    explicit = path is not None or bool(os.environ.get("TRACKOPS_CONFIG"))
    resolved = resolve_config_path(path)
    if not resolved.exists():
        if required or explicit:
            if explicit:
                raise ConfigError(f"{resolved}: config file not found ({_tried(path)})")
            raise ConfigError(f"no config file found: {_tried(path)}")
        return Settings()
    try:
        text = resolved.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{resolved}: cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{resolved}: not valid TOML: {exc}") from None
    settings = settings_from_dict(data, str(resolved), unset_secrets=unset_secrets)
    return _with_path(settings, resolved)


def _tried(path: str | os.PathLike[str] | None) -> str:
    """Where a config file was looked for, in the lookup order, for the not-found message."""
    if path is not None:
        given = os.fspath(path)
        return (
            f"--config {given} is {Path(given).absolute()}; "
            f"run `trackops --config {given} init` to write one"
        )
    env = os.environ.get("TRACKOPS_CONFIG")
    if env:
        return f"$TRACKOPS_CONFIG is {Path(env).absolute()}; run `trackops init` to write one"
    default = Path(DEFAULT_CONFIG_NAME).absolute()
    return (
        f"tried --config (not given), $TRACKOPS_CONFIG (not set), {default} (no such file);"
        " run `trackops init` to write one, or pass --config FILE"
    )


_SQLITE_PATH_RE = re.compile(r"^(sqlite(?:\+[a-z0-9]+)?:///)(.*)$", re.IGNORECASE)


def anchor_store_url(url: str, folder: Path) -> str:
    """``url`` with a relative SQLite path made relative to ``folder`` (the config's folder).

    ``sqlite:///trackops.db`` read from ``shop/trackops.toml`` is ``sqlite:///shop/trackops.db``
    (made absolute); absolute paths, ``:memory:``, URI filenames and other databases are kept.
    """
    match = _SQLITE_PATH_RE.match(url)
    if match is None:
        return url
    prefix, rest = match.groups()
    if not rest or rest.startswith((":memory:", "file:")):
        return url
    path = Path(rest).expanduser()
    if path.is_absolute():
        return prefix + str(path)
    return prefix + str((folder / path).absolute())


def _with_path(settings: Settings, path: Path) -> Settings:
    values = {f.name: getattr(settings, f.name) for f in fields(settings)}
    values["path"] = path
    values["store"] = StoreSettings(url=anchor_store_url(settings.store.url, path.parent))
    return Settings(**values)


def example_config_text() -> str:
    """The commented example configuration shipped with the package."""
    from importlib import resources

    return resources.files("trackops.core").joinpath("config.example.toml").read_text("utf-8")


def write_config(path: Path, data: dict[str, Any] | None = None, *, force: bool = False) -> Path:
    """Write a config file: the commented example, or ``data`` serialised with tomli-w.

    Refuses to overwrite an existing file unless ``force`` (``ConfigError``).
    """
    if path.exists() and not force:
        raise ConfigError(f"{path}: already exists; use --force to overwrite it")
    text = example_config_text() if data is None else tomli_w.dumps(data)
    if data is not None:
        settings_from_dict(tomllib.loads(text), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def update_config(path: Path, changes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Merge ``{table: {key: value}}`` into the TOML file at ``path`` and save it (tomli-w).

    The result is validated before it is written, so a bad value never reaches the file.
    """
    data: dict[str, Any] = {}
    if path.exists():
        data = tomllib.loads(path.read_text("utf-8"))
    for table, values in changes.items():
        target = data
        for part in table.split("."):
            target = target.setdefault(part, {})
        target.update(values)
    write_config(path, data, force=True)
    return data
