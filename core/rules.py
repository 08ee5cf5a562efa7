"""Notification conditions: a ``Transition`` and a shipment's facts in, notification intents out.

Pure: no I/O, no clock, no store. ``Rules`` is built once from ``[notifications]`` (validating
channel and predicate names, compiling patterns) and then answers ``intents`` for every update.

Conditions, in the order their intents are returned:

* ``customer`` (default): any main status change, to the buyer's email, one intent per
  ``[notifications.customer] channels``, when the customer switch is on and the shipment has a
  buyer email.
* ``seller`` (default): a change to one of ``[notifications.seller] statuses`` (Alert and
  Undelivered unless configured), to the one seller recipient, one intent per seller channel.
* ``[[notifications.conditions]]`` (custom), in config order: each filter that is set must
  match (from/to status, carrier, origin/destination country, tag and order patterns, a
  plugin predicate); one intent per recipient and channel.

Every condition sends nothing unless ``transition.notifies``: 17TRACK's exceptions (stale
information, a first sync already Delivered) hold for custom conditions as much as for the
defaults. Each audience's switch (``customer.enabled``, ``seller.enabled``) is "one switch for
all": it turns off that audience's custom conditions too.

Recipients. A customer intent goes to the buyer's email (or the condition's ``recipients``);
without one there is nothing to send. A seller intent goes to the seller email (or the
condition's ``recipients``); a non-email channel (Slack, Discord: a webhook, not an address)
needs no address, so without a seller email its recipient is the channel's name, while the
``email`` channel is skipped.

The seller's daily limit is not applied here: it counts stored rows, so the store applies it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from trackops.core.config import ConditionSettings, ConfigError, NotificationSettings
from trackops.core.status import Transition
from trackops.core.wire import PackageStatus

__all__ = ["EMAIL_CHANNEL", "NotificationIntent", "Predicate", "Rules", "ShipmentFacts"]

EMAIL_CHANNEL = "email"
"""The one channel whose recipient must be an email address."""


@dataclass(frozen=True)
class ShipmentFacts:
    """What the conditions may look at besides the transition (from the store and ``TrackInfo``).

    ``carrier`` is 17TRACK's carrier key; countries are 17TRACK's numeric country codes.
    """

    number: str
    carrier: int | None
    tag: str | None
    order: str | None
    email: str | None
    origin_country: int | None
    destination_country: int | None


@dataclass(frozen=True)
class NotificationIntent:
    """One notification to send: who, through which channel, and which condition asked for it."""

    audience: Literal["customer", "seller"]
    channel: str
    recipient: str
    condition: str
    condition_kind: Literal["default", "custom"]
    from_status: PackageStatus
    to_status: PackageStatus


_new_object = object.__new__
_set_attribute = object.__setattr__


def _intent(
    audience: Literal["customer", "seller"],
    channel: str,
    recipient: str,
    condition: str,
    condition_kind: Literal["default", "custom"],
    from_status: PackageStatus,
    to_status: PackageStatus,
) -> NotificationIntent:
    """``NotificationIntent(...)``, built more than twice as fast (measured: 1.1 -> 0.45 us).

    A frozen dataclass's ``__init__`` pays one ``object.__setattr__`` per field, and intents are
    the hot path's main allocation (the target is 100,000 decide+intents per second). The
    result is the same object: equal, hashable, immutable; a test keeps the fields in step.
    """
    intent = _new_object(NotificationIntent)
    _set_attribute(
        intent,
        "__dict__",
        {
            "audience": audience,
            "channel": channel,
            "recipient": recipient,
            "condition": condition,
            "condition_kind": condition_kind,
            "from_status": from_status,
            "to_status": to_status,
        },
    )
    return intent


Predicate = Callable[[Transition, ShipmentFacts], bool]
"""A plugin's extra test for a custom condition (``trackops_register_predicates``)."""

PredicateErrorHandler = Callable[[str, str, Exception], None]
"""Called with (condition name, predicate name, exception) when a predicate raises."""


class _Condition:
    """A condition compiled for speed: sets for the filters, bound ``search`` for patterns."""

    __slots__ = (
        "audience",
        "carriers",
        "channels",
        "destination_countries",
        "from_statuses",
        "kind",
        "name",
        "order_search",
        "origin_countries",
        "predicate",
        "predicate_name",
        "recipients",
        "tag_search",
        "to_statuses",
    )

    def __init__(
        self,
        name: str,
        kind: Literal["default", "custom"],
        audience: Literal["customer", "seller"],
        channels: tuple[str, ...],
        *,
        from_statuses: Collection[PackageStatus] = (),
        to_statuses: Collection[PackageStatus] = (),
        carriers: Collection[int] = (),
        origin_countries: Collection[int] = (),
        destination_countries: Collection[int] = (),
        tag_pattern: re.Pattern[str] | None = None,
        order_pattern: re.Pattern[str] | None = None,
        recipients: tuple[str, ...] = (),
        predicate_name: str | None = None,
        predicate: Predicate | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.audience = audience
        self.channels = tuple(dict.fromkeys(channels))
        # ``None`` means "any": the hot path tests ``is not None`` before a set lookup.
        self.from_statuses = frozenset(from_statuses) or None
        self.to_statuses = frozenset(to_statuses) or None
        self.carriers = frozenset(carriers) or None
        self.origin_countries = frozenset(origin_countries) or None
        self.destination_countries = frozenset(destination_countries) or None
        self.tag_search = tag_pattern.search if tag_pattern is not None else None
        self.order_search = order_pattern.search if order_pattern is not None else None
        self.recipients = tuple(dict.fromkeys(r for r in recipients if r))
        self.predicate_name = predicate_name
        self.predicate = predicate


class Rules:
    """The notification conditions of one configuration, validated and compiled once.

    ``known_channels``: the channel names that exist (plugins' channels); when given, a
    condition naming another channel is a ``ConfigError``. ``predicates``: the named predicates
    custom conditions may use; a condition naming an unknown one is a ``ConfigError``.
    ``on_predicate_error`` is told about a predicate that raised (which counts as not
    matching), so the caller can log it; rules themselves stay pure.
    """

    def __init__(
        self,
        notifications: NotificationSettings,
        *,
        known_channels: Collection[str] | None = None,
        predicates: Mapping[str, Predicate] | None = None,
        on_predicate_error: PredicateErrorHandler | None = None,
    ) -> None:
        self._known = frozenset(known_channels) if known_channels is not None else None
        self._predicates = dict(predicates or {})
        self._on_predicate_error = on_predicate_error
        customer = notifications.customer
        seller = notifications.seller
        self._check_channels("customer", "[notifications.customer]", customer.channels)
        self._check_channels("seller", "[notifications.seller]", seller.channels)
        self._customer = _Condition("customer", "default", "customer", customer.channels)
        self._seller = _Condition("seller", "default", "seller", seller.channels)
        # Unlike a custom condition's filters, an empty list here means "no status", not "any".
        self._seller_statuses = frozenset(seller.statuses)
        self._customer_enabled = customer.enabled
        self._seller_enabled = seller.enabled
        self._seller_email = seller.email or None
        self._custom = tuple(self._compile(c) for c in notifications.conditions)

    @property
    def condition_names(self) -> tuple[str, ...]:
        """Every condition's name, defaults first: for pickers and history filters."""
        return ("customer", "seller", *(c.name for c in self._custom))

    def intents(self, transition: Transition, facts: ShipmentFacts) -> list[NotificationIntent]:
        """The notifications ``transition`` asks for, one per condition, recipient and channel.

        ``[]`` unless ``transition.notifies``.
        """
        if not transition.notifies:
            return []
        out: list[NotificationIntent] = []
        if self._customer_enabled and facts.email:
            self._emit(out, self._customer, (facts.email,), transition)
        if self._seller_enabled and transition.new_status in self._seller_statuses:
            self._emit_seller(out, self._seller, transition)
        for condition in self._custom:
            if condition.audience == "customer":
                if not self._customer_enabled:
                    continue
            elif not self._seller_enabled:
                continue
            if not self._matches(condition, transition, facts):
                continue
            if condition.audience == "seller":
                self._emit_seller(out, condition, transition)
            elif condition.recipients:
                self._emit(out, condition, condition.recipients, transition)
            elif facts.email:
                self._emit(out, condition, (facts.email,), transition)
        return out

    # ------------------------------------------------------------------ matching

    def _matches(self, c: _Condition, transition: Transition, facts: ShipmentFacts) -> bool:
        if c.from_statuses is not None and transition.old_status not in c.from_statuses:
            return False
        if c.to_statuses is not None and transition.new_status not in c.to_statuses:
            return False
        if c.carriers is not None and facts.carrier not in c.carriers:
            return False
        if c.origin_countries is not None and facts.origin_country not in c.origin_countries:
            return False
        if (
            c.destination_countries is not None
            and facts.destination_country not in c.destination_countries
        ):
            return False
        if c.tag_search is not None and (facts.tag is None or c.tag_search(facts.tag) is None):
            return False
        if c.order_search is not None and (
            facts.order is None or c.order_search(facts.order) is None
        ):
            return False
        if c.predicate is not None:
            try:
                return bool(c.predicate(transition, facts))
            except Exception as exc:
                # A broken plugin must not stop the other notifications of this update.
                if self._on_predicate_error is not None:
                    self._on_predicate_error(c.name, c.predicate_name or "", exc)
                return False
        return True

    # ------------------------------------------------------------------ emitting

    def _emit_seller(self, out: list[NotificationIntent], c: _Condition, t: Transition) -> None:
        if c.recipients:
            self._emit(out, c, c.recipients, t)
            return
        email = self._seller_email
        for channel in c.channels:
            if email is not None:
                recipient = email
            elif channel != EMAIL_CHANNEL:
                recipient = channel  # a webhook channel: the channel itself is the recipient
            else:
                continue
            out.append(
                _intent(c.audience, channel, recipient, c.name, c.kind, t.old_status, t.new_status)
            )

    @staticmethod
    def _emit(
        out: list[NotificationIntent],
        c: _Condition,
        recipients: tuple[str, ...],
        t: Transition,
    ) -> None:
        for channel in c.channels:
            for recipient in recipients:
                out.append(
                    _intent(
                        c.audience, channel, recipient, c.name, c.kind, t.old_status, t.new_status
                    )
                )

    # ------------------------------------------------------------------ building

    def _check_channels(self, name: str, where: str, channels: tuple[str, ...]) -> None:
        if self._known is None:
            return
        for channel in channels:
            if channel not in self._known:
                known = ", ".join(sorted(self._known)) or "none (no channel plugin is loaded)"
                raise ConfigError(
                    f"{where} condition {name!r}: channel {channel!r} is not configured (fill"
                    f" in [channels.{channel}], or use a configured channel: {known})"
                )

    def _compile(self, c: ConditionSettings) -> _Condition:
        where = "[[notifications.conditions]]"
        if c.audience not in ("customer", "seller"):
            raise ConfigError(
                f"{where} condition {c.name!r}: audience: expected customer or seller, "
                f"found {c.audience!r}"
            )
        self._check_channels(c.name, where, c.channels)
        predicate = None
        if c.predicate is not None:
            predicate = self._predicates.get(c.predicate)
            if predicate is None:
                known = ", ".join(sorted(self._predicates)) or (
                    "none (plugins register them with trackops_register_predicates)"
                )
                raise ConfigError(
                    f"{where} condition {c.name!r}: unknown predicate {c.predicate!r}; "
                    f"known predicates: {known}"
                )
        patterns: dict[str, re.Pattern[str] | None] = {}
        for key, pattern in (("tag_pattern", c.tag_pattern), ("order_pattern", c.order_pattern)):
            try:
                patterns[key] = re.compile(pattern) if pattern else None
            except re.error as exc:
                raise ConfigError(
                    f"{where} condition {c.name!r}: {key}: expected a valid regular "
                    f"expression ({exc}), found {pattern!r}"
                ) from None
        return _Condition(
            c.name,
            "custom",
            "customer" if c.audience == "customer" else "seller",
            c.channels,
            from_statuses=c.from_statuses,
            to_statuses=c.to_statuses,
            carriers=c.carriers,
            origin_countries=c.origin_countries,
            destination_countries=c.destination_countries,
            tag_pattern=patterns["tag_pattern"],
            order_pattern=patterns["order_pattern"],
            recipients=c.recipients,
            predicate_name=c.predicate,
            predicate=predicate,
        )
