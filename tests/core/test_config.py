"""Config: every contract key loads, env: values, and one clear message per mistake."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from trackops.core.config import (
    ConfigError,
    Secret,
    Settings,
    example_config_text,
    load_settings,
    resolve_config_path,
    settings_from_dict,
    update_config,
    write_config,
)
from trackops.core.wire import PackageStatus

CONTRACT_KEYS = {
    "api": {"key", "base_url", "rate_limit"},
    "store": {"url"},
    "webhook": {"host", "port", "path", "max_body_bytes", "resync_hours"},
    "plugins": {"disable"},
    "notifications": {"stale_after_days", "timezone"},
    "notifications.customer": {"enabled", "channels"},
    "notifications.seller": {"enabled", "email", "daily_limit", "channels"},
    "notifications.reports": {"recipients"},
    "channels.email": {"host", "port", "username", "password", "starttls", "ssl", "sender"},
    "channels.slack": set(),
    "channels.discord": {"webhook_url"},
    "slack": {"signing_secret", "bot_token", "app_token", "admins", "api_base_url"},
}


def test_example_config_names_every_contract_key_and_loads() -> None:
    data = tomllib.loads(example_config_text())
    for table, keys in CONTRACT_KEYS.items():
        node = data
        for part in table.split("."):
            assert part in node, f"[{table}] missing from config.example.toml"
            node = node[part]
        assert keys <= set(node), f"[{table}] lacks {keys - set(node)}"
    assert "[[notifications.conditions]]" in example_config_text()
    settings = settings_from_dict(data, "example")
    assert settings.webhook.path == "/webhooks/17track"
    assert settings.notifications.seller.daily_limit == 100
    assert settings.notifications.stale_after_days == 7


def test_defaults_match_the_contract() -> None:
    s = Settings()
    assert s.api.rate_limit == 3
    assert s.store.url == "sqlite:///trackops.db"
    assert s.webhook.path == "/webhooks/17track"
    assert s.channels.email.starttls is False and s.channels.email.ssl is False
    assert s.notifications.timezone == "UTC"
    assert s.notifications.seller.statuses == (PackageStatus.ALERT, PackageStatus.UNDELIVERED)


def test_env_values_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "s3cret-value")
    monkeypatch.setenv("MY_HOOK", "https://discord.com/api/webhooks/1/s3cret")
    s = settings_from_dict(
        {"api": {"key": "env:MY_KEY"}, "channels": {"discord": {"webhook_url": "env:MY_HOOK"}}}
    )
    assert s.api.key.reveal() == "s3cret-value"
    assert s.channels.table("discord")["webhook_url"] == "https://discord.com/api/webhooks/1/s3cret"


def test_missing_env_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({"api": {"key": "env:NOPE_KEY"}}, "x.toml")
    # What is missing, not "found (hidden)": the value was never there to hide.
    assert str(caught.value) == (
        "x.toml: [api] key: expected environment variable NOPE_KEY to be set (the config says"
        ' "env:NOPE_KEY"); it is not'
    )


def test_reading_commands_take_an_unset_secret_as_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    """``unset_secrets`` (``status``, ``list``, ``history``): a secret whose variable is not
    set reads as empty; any other setting's unset variable is still an error."""
    for name in ("NOPE_KEY", "NOPE_PW", "NOPE_HOOK", "NOPE_TOKEN", "NOPE_DB"):
        monkeypatch.delenv(name, raising=False)
    doc = {
        "api": {"key": "env:NOPE_KEY"},
        "channels": {
            "email": {"password": "env:NOPE_PW"},
            "discord": {"webhook_url": "env:NOPE_HOOK"},
        },
        "slack": {"bot_token": "env:NOPE_TOKEN"},
    }
    s = settings_from_dict(doc, "x.toml", unset_secrets=True)
    assert (s.api.key, s.channels.email.password, s.slack.bot_token) == (Secret(""),) * 3
    assert s.channels.table("discord")["webhook_url"] is None
    with pytest.raises(ConfigError, match="NOPE_HOOK to be set"):
        settings_from_dict({"channels": {"discord": {"webhook_url": "env:NOPE_HOOK"}}}, "x.toml")
    with pytest.raises(ConfigError, match=r"\[store\] url: expected environment variable NOPE_DB"):
        settings_from_dict({"store": {"url": "env:NOPE_DB"}}, "x.toml", unset_secrets=True)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ('[api]\nrate_limit = "fast"', r'\[api\] rate_limit: expected a number > 0, found "fast"'),
        ("[api]\nkee = 1", r"\[api\] unknown key 'kee'; expected one of: .*key"),
        ("[bogus]\nx = 1", r"unknown key 'bogus'"),
        ('[store]\nurl = "mysql://x"', r"\[store\] url: expected sqlite:///PATH or postgresql://"),
        ("[webhook]\nport = 70000", r"\[webhook\] port: expected a whole number from 0 to 65535"),
        ('[webhook]\npath = "hooks"', r"\[webhook\] path: expected a path starting with /"),
        ('[notifications]\ntimezone = "Mars/Base"', r"timezone: expected an IANA time zone"),
        (
            '[notifications.seller]\nstatuses = ["lost"]',
            r'statuses: expected status names among .*found "lost"',
        ),
        ("[notifications.customer]\nenabled = 3", r"enabled: expected true or false, found 3"),
        (
            '[[notifications.conditions]]\naudience = "seller"',
            r"name: expected a non-empty condition name",
        ),
        (
            '[[notifications.conditions]]\nname = "x"\naudience = "boss"',
            r"'x' audience: expected customer or seller",
        ),
        (
            '[[notifications.conditions]]\nname = "x"\nto = ["lost"]',
            r"'x' to: expected status names",
        ),
        (
            '[[notifications.conditions]]\nname = "x"\ntag_pattern = "("',
            r"'x' tag_pattern: expected a valid regular expression",
        ),
        (
            '[[notifications.conditions]]\nname = "x"\n[[notifications.conditions]]\nname = "x"',
            r"expected a unique name",
        ),
        ("[channels.email]\nssl = true\nstarttls = true", r"starttls and ssl not both true"),
    ],
)
def test_each_mistake_gets_one_clear_message(doc: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        settings_from_dict(tomllib.loads(doc), "t.toml")
    assert str(info.value).startswith("t.toml: ")
    assert "\n" not in str(info.value)


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings_from_dict(
        {
            "api": {"key": "KEY-123456"},
            "channels": {"email": {"password": "PW-987654"}},
            "slack": {"bot_token": "xoxb-SECRET", "signing_secret": "SIGN-SECRET"},
        }
    )
    text = repr(s) + str(s)
    for secret in ("KEY-123456", "PW-987654", "xoxb-SECRET", "SIGN-SECRET"):
        assert secret not in text
    assert s.channels.email.password.reveal() == "PW-987654"
    assert s.slack.enabled
    assert repr(Secret("x")) == "Secret('********')"


def test_a_wrong_secret_type_is_reported_without_its_value() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"channels": {"email": {"password": 123456789}}}, "t.toml")
    assert "123456789" not in str(info.value)
    assert "password: expected a string, found (hidden)" in str(info.value)


def test_condition_fields_are_typed() -> None:
    s = settings_from_dict(
        {
            "notifications": {
                "conditions": [
                    {
                        "name": "fedex-delivered",
                        "audience": "customer",
                        "from": ["in_transit"],
                        "to": [40],
                        "carriers": [100003],
                        "destination_countries": [2105],
                        "channels": ["email", "slack"],
                        "order_pattern": "^10",
                    },
                ]
            }
        }
    )
    (c,) = s.notifications.conditions
    assert c.to_statuses == (PackageStatus.DELIVERED,)
    assert c.from_statuses == (PackageStatus.IN_TRANSIT,)
    assert c.carriers == (100003,) and c.destination_countries == (2105,)
    assert c.channels == ("email", "slack")


def test_lookup_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path(None) == Path("trackops.toml")
    monkeypatch.setenv("TRACKOPS_CONFIG", str(tmp_path / "env.toml"))
    assert resolve_config_path(None) == tmp_path / "env.toml"
    assert resolve_config_path("given.toml") == Path("given.toml")


def test_missing_default_file_gives_defaults_but_explicit_one_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings(None).store.url == "sqlite:///trackops.db"
    with pytest.raises(ConfigError, match=r"nope.toml: config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_invalid_toml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[api\nkey=", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        load_settings(path)


def test_write_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "trackops.toml"
    write_config(path)
    assert load_settings(path).path == path
    with pytest.raises(ConfigError, match="already exists; use --force"):
        write_config(path)
    write_config(path, force=True)


def test_update_config_merges_and_validates(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    update_config(path, {"notifications.seller": {"email": "ops@x.example", "daily_limit": 5}})
    assert load_settings(path).notifications.seller.daily_limit == 5
    with pytest.raises(ConfigError):
        update_config(path, {"notifications.seller": {"daily_limit": "many"}})
    assert load_settings(path).notifications.seller.daily_limit == 5


# --------------------------------------------------------------------------- paths (issue 13)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///trackops.db", "sqlite:///{folder}/trackops.db"),
        ("sqlite+aiosqlite:///data/t.db", "sqlite+aiosqlite:///{folder}/data/t.db"),
        ("sqlite:////var/lib/t.db", "sqlite:////var/lib/t.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql://trackops@db/shop", "postgresql://trackops@db/shop"),
    ],
)
def test_a_relative_sqlite_path_is_relative_to_the_config_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, expected: str
) -> None:
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "trackops.toml").write_text(f'[store]\nurl = "{url}"\n', encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(Path("../shop/trackops.toml"))
    assert settings.store.url == expected.format(folder=(elsewhere / "../shop").absolute())


def test_a_missing_default_config_names_every_place_tried_when_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_settings(None, required=True)
    assert str(caught.value) == (
        "no config file found: tried --config (not given), $TRACKOPS_CONFIG (not set), "
        f"{tmp_path / 'trackops.toml'} (no such file); run `trackops init` to write one, "
        "or pass --config FILE"
    )
    monkeypatch.setenv("TRACKOPS_CONFIG", "conf/t.toml")
    with pytest.raises(ConfigError, match=r"\$TRACKOPS_CONFIG is .*/conf/t\.toml"):
        load_settings(None)


# --------------------------------------------------------------------------- issue 12


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[notifications]\nstale_after_days = nan", r"stale_after_days: expected a number > 0"),
        ("[notifications]\nstale_after_days = inf", r"stale_after_days: expected a number > 0"),
        ("[api]\nrate_limit = -inf", r"rate_limit: expected a number > 0"),
        ("[api]\ntimeout = 'nan'", r"timeout: expected a number > 0"),
        ("[webhook]\nresync_hours = nan", r"resync_hours: expected a number >= 0"),
        ("[webhook]\nbody_timeout = inf", r"body_timeout: expected a number > 0"),
        ("[webhook]\nstall_seconds = nan", r"stall_seconds: expected a number > 0"),
        ("[channels.email]\ntimeout = nan", r"timeout: expected a number > 0"),
        (
            "[notifications]\ntracking_url = 'https://x.example/{num}'",
            r"tracking_url: expected an http\(s\) URL whose only placeholder is \{number\}",
        ),
        ("[notifications]\ntracking_url = 'https://x.example/{'", r"tracking_url: expected"),
        ("[notifications]\ntracking_url = 'https://x/{0}'", r"tracking_url: expected"),
        ("[notifications]\ntracking_url = 'https://x/{number.x}'", r"tracking_url: expected"),
        ("[notifications]\ntracking_url = 'track/{number}'", r"tracking_url: expected"),
        ("[webhook]\nallow_networks = ['10.0.0.0/33']", r"allow_networks: expected IP addresses"),
        ("[webhook]\ntrusted_proxies = ['proxy.local']", r"trusted_proxies: expected IP"),
        ("[notifications.seller]\nemail = 'ops at shop'", r"\[notifications.seller\] email"),
        (
            "[notifications.reports]\nrecipients = ['a@shop.example', 'nobody']",
            r"recipients: expected email addresses.*found \"nobody\"",
        ),
        ("[channels.email]\nsender = 'trackops'", r"sender: expected an email address"),
        ("[channels.email]\nsender = 'a@b@c'", r"sender: expected an email address"),
    ],
)
def test_hostile_values_are_config_errors(toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_dict(tomllib.loads(toml), "x.toml")


@pytest.mark.parametrize(
    "value",
    [
        "https://discord.com/api/webhooks/123/tok en-secret",
        "discord.com/api/webhooks/123/tok-secret",
        {"url": "https://discord.com/api/webhooks/123/tok-secret"},
        "ftp://discord.com/api/webhooks/123/tok-secret",
    ],
)
def test_a_malformed_webhook_url_is_refused_without_showing_it(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({"channels": {"discord": {"webhook_url": value}}}, "x.toml")
    message = str(caught.value)
    assert "[channels.discord] webhook_url: expected an http:// or https:// URL" in message
    assert "secret" not in message and "123" not in message


def test_good_values_still_load() -> None:
    settings = settings_from_dict(
        {
            "webhook": {"allow_networks": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]},
            "notifications": {
                "tracking_url": "https://shop.example/track?n={number}",
                "seller": {"email": "Ops Team <ops@shop.example>"},
                "reports": {"recipients": ["a@shop.example"]},
            },
            "channels": {
                "email": {"sender": "Shop <noreply@shop.example>"},
                "discord": {"webhook_url": "https://discord.com/api/webhooks/1/abc"},
            },
        }
    )
    assert settings.notifications.tracking_url.format(number="X").endswith("n=X")
