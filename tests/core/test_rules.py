"""Notification conditions (``trackops.core.rules``): defaults, custom filters, validation.

Each table row is one sentence of ``reference/17track-notification-rules.txt`` or of DESIGN.md's
"Notification rules", at its boundary.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pytest
from trackops.core.config import (
    ConditionSettings,
    ConfigError,
    CustomerSettings,
    NotificationSettings,
    SellerSettings,
    settings_from_dict,
)
from trackops.core.rules import NotificationIntent, Rules, ShipmentFacts, _intent
from trackops.core.status import Transition
from trackops.core.wire import PackageStatus

S = PackageStatus
CHANNELS = ("email", "slack", "discord")

FACTS = ShipmentFacts(
    number="RR123456789CN",
    carrier=3011,
    tag="vip-7",
    order="A-1001",
    email="buyer@example.com",
    origin_country=301,
    destination_country=1803,
)


def change(
    old: PackageStatus = S.IN_TRANSIT, new: PackageStatus = S.ALERT, **flags: Any
) -> Transition:
    """A notifying transition unless ``flags`` say otherwise."""
    values: dict[str, Any] = dict(
        number=FACTS.number,
        old_status=old,
        new_status=new,
        first_sync=False,
        status_changed=old != new,
        stale=False,
        duplicate=False,
        out_of_order=False,
        event_time=None,
    )
    values.update(flags)
    return Transition(**values)


def notes(
    *conditions: ConditionSettings,
    customer: CustomerSettings | None = None,
    seller: SellerSettings | None = None,
) -> NotificationSettings:
    return NotificationSettings(
        customer=customer or CustomerSettings(),
        seller=seller or SellerSettings(email="seller@shop.example"),
        conditions=conditions,
    )


def rules(settings: NotificationSettings, **kwargs: Any) -> Rules:
    kwargs.setdefault("known_channels", CHANNELS)
    return Rules(settings, **kwargs)


def sent(intents: list[NotificationIntent]) -> list[tuple[str, str, str, str, str]]:
    """(audience, channel, recipient, condition, kind) of each intent, in order."""
    return [(i.audience, i.channel, i.recipient, i.condition, i.condition_kind) for i in intents]


CUSTOMER = ("customer", "email", "buyer@example.com", "customer", "default")
SELLER = ("seller", "email", "seller@shop.example", "seller", "default")


# --------------------------------------------------------------------------- default conditions

DEFAULT_CASES = [
    # "Customer notifications: one switch for all, to the shipment's buyer email" on any change.
    pytest.param(notes(), change(S.IN_TRANSIT, S.DELIVERED), FACTS, [CUSTOMER], id="delivered"),
    pytest.param(
        notes(),
        change(S.NOT_FOUND, S.IN_TRANSIT, first_sync=True),
        FACTS,
        [CUSTOMER],
        id="first-sync-in-transit-customer",
    ),
    pytest.param(notes(), change(S.ALERT, S.IN_TRANSIT), FACTS, [CUSTOMER], id="back-to-transit"),
    pytest.param(notes(), change(S.IN_TRANSIT, S.PICK_UP), FACTS, [CUSTOMER], id="pick-up"),
    pytest.param(
        notes(customer=CustomerSettings(enabled=False)),
        change(S.IN_TRANSIT, S.DELIVERED),
        FACTS,
        [],
        id="customer-switch-off",
    ),
    pytest.param(
        notes(),
        change(S.IN_TRANSIT, S.DELIVERED),
        replace(FACTS, email=None),
        [],
        id="no-buyer-email",
    ),
    pytest.param(
        notes(),
        change(S.IN_TRANSIT, S.DELIVERED),
        replace(FACTS, email=""),
        [],
        id="empty-buyer-email",
    ),
    pytest.param(
        notes(customer=CustomerSettings(channels=("email", "slack"))),
        change(S.IN_TRANSIT, S.DELIVERED),
        FACTS,
        [CUSTOMER, ("customer", "slack", "buyer@example.com", "customer", "default")],
        id="customer-one-intent-per-channel",
    ),
    # Seller: "default condition is a change to Alert or Undelivered".
    pytest.param(notes(), change(S.IN_TRANSIT, S.ALERT), FACTS, [CUSTOMER, SELLER], id="alert"),
    pytest.param(
        notes(), change(S.IN_TRANSIT, S.UNDELIVERED), FACTS, [CUSTOMER, SELLER], id="undelivered"
    ),
    pytest.param(
        notes(),
        change(S.NOT_FOUND, S.ALERT, first_sync=True),
        FACTS,
        [CUSTOMER, SELLER],
        id="first-sync-alert-seller",
    ),
    pytest.param(
        notes(customer=CustomerSettings(enabled=False)),
        change(S.IN_TRANSIT, S.DELIVERED),
        FACTS,
        [],
        id="seller-not-on-delivered",
    ),
    pytest.param(
        notes(customer=CustomerSettings(enabled=False)),
        change(S.IN_TRANSIT, S.EXPIRED),
        FACTS,
        [],
        id="seller-not-on-expired",
    ),
    pytest.param(
        notes(
            customer=CustomerSettings(enabled=False),
            seller=SellerSettings(email="seller@shop.example", statuses=(S.DELIVERED,)),
        ),
        change(S.IN_TRANSIT, S.DELIVERED),
        FACTS,
        [SELLER],
        id="seller-statuses-configured-delivered",
    ),
    pytest.param(
        notes(
            customer=CustomerSettings(enabled=False),
            seller=SellerSettings(email="seller@shop.example", statuses=(S.DELIVERED,)),
        ),
        change(S.IN_TRANSIT, S.ALERT),
        FACTS,
        [],
        id="seller-statuses-configured-not-alert",
    ),
    pytest.param(
        notes(
            customer=CustomerSettings(enabled=False),
            seller=SellerSettings(email="seller@shop.example", statuses=()),
        ),
        change(S.IN_TRANSIT, S.ALERT),
        FACTS,
        [],
        id="seller-statuses-empty-means-none",
    ),
    pytest.param(
        notes(seller=SellerSettings(enabled=False, email="seller@shop.example")),
        change(S.IN_TRANSIT, S.ALERT),
        FACTS,
        [CUSTOMER],
        id="seller-switch-off",
    ),
    pytest.param(
        notes(customer=CustomerSettings(enabled=False), seller=SellerSettings(email="")),
        change(S.IN_TRANSIT, S.ALERT),
        FACTS,
        [],
        id="seller-email-channel-needs-seller-email",
    ),
    pytest.param(
        notes(
            customer=CustomerSettings(enabled=False),
            seller=SellerSettings(email="", channels=("email", "slack", "discord")),
        ),
        change(S.IN_TRANSIT, S.ALERT),
        FACTS,
        [
            ("seller", "slack", "slack", "seller", "default"),
            ("seller", "discord", "discord", "seller", "default"),
        ],
        id="seller-webhook-channels-without-seller-email",
    ),
    pytest.param(
        notes(
            customer=CustomerSettings(enabled=False),
            seller=SellerSettings(email="seller@shop.example", channels=("email", "slack")),
        ),
        change(S.IN_TRANSIT, S.UNDELIVERED),
        FACTS,
        [SELLER, ("seller", "slack", "seller@shop.example", "seller", "default")],
        id="seller-one-recipient-per-channel",
    ),
    pytest.param(
        notes(seller=SellerSettings(email="seller@shop.example", channels=("email", "email"))),
        change(S.IN_TRANSIT, S.ALERT),
        FACTS,
        [CUSTOMER, SELLER],
        id="repeated-channel-sends-once",
    ),
]


@pytest.mark.parametrize(("settings", "transition", "facts", "expected"), DEFAULT_CASES)
def test_default_conditions(
    settings: NotificationSettings,
    transition: Transition,
    facts: ShipmentFacts,
    expected: list[tuple[str, ...]],
) -> None:
    assert sent(rules(settings).intents(transition, facts)) == expected


def test_intents_carry_the_status_change() -> None:
    intents = rules(notes()).intents(change(S.IN_TRANSIT, S.ALERT), FACTS)
    assert {(i.from_status, i.to_status) for i in intents} == {(S.IN_TRANSIT, S.ALERT)}


# --------------------------------------------------------------------------- the exceptions

EVERYTHING = ConditionSettings(name="everything", audience="seller", recipients=("ops@x.io",))
"""A custom condition with no filter: it matches every notifying transition."""

SILENT = [
    pytest.param(change(S.IN_TRANSIT, S.IN_TRANSIT), id="no-status-change"),
    pytest.param(change(S.IN_TRANSIT, S.ALERT, stale=True), id="stale-over-7-days"),
    pytest.param(
        change(S.NOT_FOUND, S.DELIVERED, first_sync=True), id="first-sync-already-delivered"
    ),
    pytest.param(change(S.IN_TRANSIT, S.ALERT, duplicate=True), id="duplicate-push"),
    pytest.param(change(S.DELIVERED, S.ALERT, out_of_order=True), id="out-of-order-push"),
    pytest.param(
        change(S.NOT_FOUND, S.NOT_FOUND, first_sync=True), id="first-sync-still-not-found"
    ),
]


@pytest.mark.parametrize("transition", SILENT)
def test_no_condition_sends_unless_the_transition_notifies(transition: Transition) -> None:
    settings = notes(
        EVERYTHING,
        ConditionSettings(name="to-delivered", to_statuses=(S.DELIVERED,), recipients=("a@b.c",)),
        ConditionSettings(name="buyers", audience="customer"),
        seller=SellerSettings(email="seller@shop.example", statuses=tuple(S)),
    )
    assert not transition.notifies
    assert rules(settings).intents(transition, FACTS) == []


@pytest.mark.parametrize(
    ("transition", "expected"),
    [
        pytest.param(
            change(S.NOT_FOUND, S.DELIVERED, first_sync=True), [], id="first-sync-delivered"
        ),
        pytest.param(change(S.NOT_FOUND, S.DELIVERED, stale=True), [], id="stale-delivered"),
        pytest.param(
            change(S.NOT_FOUND, S.DELIVERED),
            [("seller", "email", "ops@x.io", "delivered", "custom")],
            id="later-delivered",
        ),
    ],
)
def test_exceptions_hold_for_custom_conditions(
    transition: Transition, expected: list[tuple[str, ...]]
) -> None:
    delivered = ConditionSettings(
        name="delivered",
        from_statuses=(S.NOT_FOUND,),
        to_statuses=(S.DELIVERED,),
        recipients=("ops@x.io",),
    )
    settings = notes(delivered, customer=CustomerSettings(enabled=False))
    assert sent(rules(settings).intents(transition, FACTS)) == expected


# --------------------------------------------------------------------------- custom filters


def custom(**values: Any) -> ConditionSettings:
    values.setdefault("recipients", ("ops@shop.example",))
    return ConditionSettings(name="watch", audience="seller", channels=("email",), **values)


def matches(condition: ConditionSettings, transition: Transition, facts: ShipmentFacts) -> bool:
    settings = notes(condition, customer=CustomerSettings(enabled=False))
    settings = replace(settings, seller=replace(settings.seller, statuses=()))
    found = sent(rules(settings, predicates=PREDICATES).intents(transition, facts))
    assert found in ([], [("seller", "email", "ops@shop.example", "watch", "custom")])
    return bool(found)


def _boom(transition: Transition, facts: ShipmentFacts) -> bool:
    raise RuntimeError("plugin bug")


PREDICATES = {
    "yes": lambda t, f: True,
    "no": lambda t, f: False,
    "heavy": lambda t, f: f.carrier == 3011 and t.new_status is S.ALERT,
    "truthy": lambda t, f: "yes",
    "boom": _boom,
}

T = change(S.IN_TRANSIT, S.ALERT)

FILTER_CASES = [
    pytest.param(custom(), T, FACTS, True, id="no-filter-matches-any-change"),
    pytest.param(custom(from_statuses=(S.IN_TRANSIT,)), T, FACTS, True, id="from-matches"),
    pytest.param(custom(from_statuses=(S.PICK_UP, S.EXPIRED)), T, FACTS, False, id="from-differs"),
    pytest.param(
        custom(from_statuses=(S.NOT_FOUND,)),
        change(S.NOT_FOUND, S.IN_TRANSIT, first_sync=True),
        FACTS,
        True,
        id="from-not-found-matches-first-sync",
    ),
    pytest.param(custom(to_statuses=(S.ALERT, S.EXPIRED)), T, FACTS, True, id="to-matches"),
    pytest.param(custom(to_statuses=(S.DELIVERED,)), T, FACTS, False, id="to-differs"),
    pytest.param(
        custom(from_statuses=(S.IN_TRANSIT,), to_statuses=(S.ALERT,)),
        T,
        FACTS,
        True,
        id="from-and-to",
    ),
    pytest.param(custom(carriers=(100002, 3011)), T, FACTS, True, id="carrier-matches"),
    pytest.param(custom(carriers=(100002,)), T, FACTS, False, id="carrier-differs"),
    pytest.param(
        custom(carriers=(3011,)), T, replace(FACTS, carrier=None), False, id="carrier-unknown"
    ),
    pytest.param(custom(origin_countries=(301,)), T, FACTS, True, id="origin-matches"),
    pytest.param(custom(origin_countries=(1803,)), T, FACTS, False, id="origin-differs"),
    pytest.param(
        custom(origin_countries=(301,)),
        T,
        replace(FACTS, origin_country=None),
        False,
        id="origin-unknown",
    ),
    pytest.param(custom(destination_countries=(1803,)), T, FACTS, True, id="destination-matches"),
    pytest.param(custom(destination_countries=(301,)), T, FACTS, False, id="destination-differs"),
    pytest.param(custom(tag_pattern=r"^vip-\d+$"), T, FACTS, True, id="tag-matches"),
    pytest.param(custom(tag_pattern=r"ip-7"), T, FACTS, True, id="tag-is-searched-not-anchored"),
    pytest.param(custom(tag_pattern=r"^gold"), T, FACTS, False, id="tag-differs"),
    pytest.param(custom(tag_pattern=r".*"), T, replace(FACTS, tag=None), False, id="tag-none"),
    pytest.param(custom(tag_pattern=r".*"), T, replace(FACTS, tag=""), True, id="tag-empty"),
    pytest.param(custom(order_pattern=r"^A-\d{4}$"), T, FACTS, True, id="order-matches"),
    pytest.param(custom(order_pattern=r"^B-"), T, FACTS, False, id="order-differs"),
    pytest.param(custom(order_pattern=r"."), T, replace(FACTS, order=None), False, id="order-none"),
    pytest.param(custom(predicate="yes"), T, FACTS, True, id="predicate-true"),
    pytest.param(custom(predicate="no"), T, FACTS, False, id="predicate-false"),
    pytest.param(custom(predicate="truthy"), T, FACTS, True, id="predicate-truthy"),
    pytest.param(custom(predicate="heavy"), T, FACTS, True, id="predicate-sees-both"),
    pytest.param(
        custom(predicate="heavy"), change(S.IN_TRANSIT, S.EXPIRED), FACTS, False, id="pred-status"
    ),
    pytest.param(custom(predicate="boom"), T, FACTS, False, id="predicate-raises-no-match"),
    pytest.param(
        custom(
            from_statuses=(S.IN_TRANSIT,),
            to_statuses=(S.ALERT,),
            carriers=(3011,),
            origin_countries=(301,),
            destination_countries=(1803,),
            tag_pattern="vip",
            order_pattern="^A-",
            predicate="yes",
        ),
        T,
        FACTS,
        True,
        id="every-filter-matches",
    ),
    pytest.param(
        custom(
            from_statuses=(S.IN_TRANSIT,),
            to_statuses=(S.ALERT,),
            carriers=(3011,),
            origin_countries=(301,),
            destination_countries=(1803,),
            tag_pattern="vip",
            order_pattern="^A-",
            predicate="no",
        ),
        T,
        FACTS,
        False,
        id="every-filter-but-one-matches",
    ),
]


@pytest.mark.parametrize(("condition", "transition", "facts", "expected"), FILTER_CASES)
def test_custom_condition_filters(
    condition: ConditionSettings, transition: Transition, facts: ShipmentFacts, expected: bool
) -> None:
    assert matches(condition, transition, facts) is expected


def test_a_raising_predicate_is_reported_and_the_other_conditions_still_send() -> None:
    errors: list[tuple[str, str, str]] = []
    settings = notes(
        ConditionSettings(name="broken", predicate="boom", recipients=("a@x.io",)),
        ConditionSettings(name="fine", recipients=("b@x.io",)),
        customer=CustomerSettings(enabled=False),
    )
    engine_rules = rules(
        settings,
        predicates=PREDICATES,
        on_predicate_error=lambda c, p, e: errors.append((c, p, str(e))),
    )
    intents = engine_rules.intents(change(S.IN_TRANSIT, S.EXPIRED), FACTS)
    assert [i.condition for i in intents] == ["fine"]
    assert errors == [("broken", "boom", "plugin bug")]


def test_predicate_is_called_with_the_transition_and_facts() -> None:
    calls: list[tuple[Transition, ShipmentFacts]] = []

    def spy(transition: Transition, facts: ShipmentFacts) -> bool:
        calls.append((transition, facts))
        return True

    settings = notes(ConditionSettings(name="spy", predicate="spy", recipients=("a@x.io",)))
    transition = change(S.IN_TRANSIT, S.PICK_UP)
    rules(settings, predicates={"spy": spy}).intents(transition, FACTS)
    assert calls == [(transition, FACTS)]


# --------------------------------------------------------------------------- custom audiences

AUDIENCE_CASES = [
    pytest.param(
        ConditionSettings(name="c", audience="customer"),
        notes(),
        FACTS,
        [("customer", "email", "buyer@example.com", "c", "custom")],
        id="customer-to-buyer-email",
    ),
    pytest.param(
        ConditionSettings(name="c", audience="customer", recipients=("cc@x.io",)),
        notes(),
        FACTS,
        [("customer", "email", "cc@x.io", "c", "custom")],
        id="customer-explicit-recipients",
    ),
    pytest.param(
        ConditionSettings(name="c", audience="customer"),
        notes(),
        replace(FACTS, email=None),
        [],
        id="customer-without-any-recipient-skipped",
    ),
    pytest.param(
        ConditionSettings(name="c", audience="customer", recipients=("cc@x.io",)),
        notes(customer=CustomerSettings(enabled=False)),
        FACTS,
        [],
        id="customer-switch-off-covers-custom",
    ),
    pytest.param(
        ConditionSettings(name="s", audience="seller"),
        notes(),
        FACTS,
        [("seller", "email", "seller@shop.example", "s", "custom")],
        id="seller-to-seller-email",
    ),
    pytest.param(
        ConditionSettings(name="s", audience="seller", recipients=("ops@x.io", "cto@x.io")),
        notes(),
        FACTS,
        [
            ("seller", "email", "ops@x.io", "s", "custom"),
            ("seller", "email", "cto@x.io", "s", "custom"),
        ],
        id="seller-explicit-recipients",
    ),
    pytest.param(
        ConditionSettings(name="s", audience="seller"),
        notes(seller=SellerSettings(email="")),
        FACTS,
        [],
        id="seller-email-channel-without-seller-email-skipped",
    ),
    pytest.param(
        ConditionSettings(name="s", audience="seller", channels=("email", "slack")),
        notes(seller=SellerSettings(email="")),
        FACTS,
        [("seller", "slack", "slack", "s", "custom")],
        id="seller-webhook-channel-without-seller-email",
    ),
    pytest.param(
        ConditionSettings(name="s", audience="seller", recipients=("ops@x.io",)),
        notes(seller=SellerSettings(enabled=False, email="seller@shop.example")),
        FACTS,
        [],
        id="seller-switch-off-covers-custom",
    ),
    pytest.param(
        ConditionSettings(
            name="s",
            audience="seller",
            channels=("email", "slack"),
            recipients=("ops@x.io", "cto@x.io", "ops@x.io"),
        ),
        notes(),
        FACTS,
        [
            ("seller", "email", "ops@x.io", "s", "custom"),
            ("seller", "email", "cto@x.io", "s", "custom"),
            ("seller", "slack", "ops@x.io", "s", "custom"),
            ("seller", "slack", "cto@x.io", "s", "custom"),
        ],
        id="one-intent-per-recipient-and-channel",
    ),
]


@pytest.mark.parametrize(("condition", "settings", "facts", "expected"), AUDIENCE_CASES)
def test_custom_condition_audience(
    condition: ConditionSettings,
    settings: NotificationSettings,
    facts: ShipmentFacts,
    expected: list[tuple[str, ...]],
) -> None:
    # An Expired change, which the seller default ignores; the defaults' rows are left out.
    settings = replace(settings, conditions=(condition,))
    found = sent(rules(settings).intents(change(S.IN_TRANSIT, S.EXPIRED), facts))
    assert [row for row in found if row[4] == "custom"] == expected


def test_defaults_come_first_then_custom_conditions_in_config_order() -> None:
    settings = notes(
        ConditionSettings(name="second", recipients=("2@x.io",)),
        ConditionSettings(name="first", recipients=("1@x.io",)),
    )
    intents = rules(settings).intents(change(S.IN_TRANSIT, S.ALERT), FACTS)
    assert [(i.condition, i.condition_kind) for i in intents] == [
        ("customer", "default"),
        ("seller", "default"),
        ("second", "custom"),
        ("first", "custom"),
    ]
    assert rules(settings).condition_names == ("customer", "seller", "second", "first")


# --------------------------------------------------------------------------- validation

VALIDATION_CASES = [
    pytest.param(
        notes(customer=CustomerSettings(channels=("email", "sms"))),
        {},
        ["'customer'", "'sms'", "discord, email, slack"],
        id="customer-unknown-channel",
    ),
    pytest.param(
        notes(seller=SellerSettings(channels=("telegram",))),
        {},
        ["'seller'", "'telegram'", "discord, email, slack"],
        id="seller-unknown-channel",
    ),
    pytest.param(
        notes(customer=CustomerSettings(enabled=False, channels=("sms",))),
        {},
        ["'customer'", "'sms'"],
        id="disabled-default-is-checked-too",
    ),
    pytest.param(
        notes(ConditionSettings(name="vip-watch", channels=("email", "pager"))),
        {},
        ["'vip-watch'", "'pager'", "discord, email, slack"],
        id="custom-unknown-channel",
    ),
    pytest.param(
        notes(),
        {"known_channels": ()},
        ["'customer'", "'email'", "none"],
        id="no-channel-known",
    ),
    pytest.param(
        notes(ConditionSettings(name="heavy-parcels", predicate="is_heavy")),
        {"predicates": {"is_fragile": lambda t, f: True, "is_big": lambda t, f: True}},
        ["'heavy-parcels'", "'is_heavy'", "is_big, is_fragile"],
        id="unknown-predicate",
    ),
    pytest.param(
        notes(ConditionSettings(name="heavy-parcels", predicate="is_heavy")),
        {},
        ["'heavy-parcels'", "'is_heavy'", "none"],
        id="no-predicate-registered",
    ),
    pytest.param(
        notes(ConditionSettings(name="bad-re", tag_pattern="(unclosed")),
        {},
        ["'bad-re'", "tag_pattern", "(unclosed"],
        id="bad-pattern",
    ),
    pytest.param(
        notes(ConditionSettings(name="who", audience="everyone")),
        {},
        ["'who'", "audience", "'everyone'"],
        id="bad-audience",
    ),
]


@pytest.mark.parametrize(("settings", "kwargs", "named"), VALIDATION_CASES)
def test_rules_refuse_a_bad_configuration(
    settings: NotificationSettings, kwargs: dict[str, Any], named: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        rules(settings, **kwargs)
    for text in named:
        assert text in str(caught.value)


def test_channels_are_not_checked_without_known_channels() -> None:
    settings = notes(ConditionSettings(name="x", channels=("anything",), recipients=("a@b.c",)))
    intents = Rules(settings).intents(change(S.IN_TRANSIT, S.EXPIRED), FACTS)
    assert [i.channel for i in intents] == ["email", "anything"]


def test_known_channels_accepts_any_collection() -> None:
    settings = notes(seller=SellerSettings(channels=("slack",)))
    Rules(settings, known_channels={"email": object(), "slack": object()}.keys())


def test_rules_from_a_loaded_config() -> None:
    settings = settings_from_dict(
        {
            "notifications": {
                "customer": {"enabled": True},
                "seller": {"email": "me@shop.example", "channels": ["email", "slack"]},
                "conditions": [
                    {
                        "name": "late-eu",
                        "audience": "seller",
                        "to": ["undelivered", 50],
                        "destination_countries": [1803],
                        "tag_pattern": "^vip",
                        "channels": ["slack"],
                    }
                ],
            }
        }
    )
    engine_rules = rules(settings.notifications)
    intents = engine_rules.intents(change(S.IN_TRANSIT, S.ALERT), FACTS)
    assert sent(intents) == [
        CUSTOMER,
        ("seller", "email", "me@shop.example", "seller", "default"),
        ("seller", "slack", "me@shop.example", "seller", "default"),
        ("seller", "slack", "me@shop.example", "late-eu", "custom"),
    ]


# --------------------------------------------------------------------------- intent objects


def test_fast_intent_builder_makes_the_same_frozen_intent() -> None:
    args = ("seller", "slack", "a@b.c", "late", "custom", S.IN_TRANSIT, S.ALERT)
    fast = _intent(*args)  # type: ignore[arg-type]
    slow = NotificationIntent(*args)  # type: ignore[arg-type]
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert repr(fast) == repr(slow)
    assert list(vars(fast)) == [f.name for f in fields(NotificationIntent)]
    with pytest.raises(AttributeError):
        fast.recipient = "x"  # type: ignore[misc]
