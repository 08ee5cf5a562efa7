"""The family of errors a person reads: every one carries the message to show.

``TrackopsError`` is the base of every error that a user can act on (bad input, bad config,
17TRACK refusing, the store away, a broken plugin). Front-ends catch it and show ``str(exc)``,
one line, never a traceback; anything else is a bug of ours.
"""

from __future__ import annotations

__all__ = ["InvalidInputError", "NotFoundError", "PermissionDeniedError", "TrackopsError"]


class TrackopsError(Exception):
    """An error with a message for a person (``str(exc)``); no traceback needed."""


class NotFoundError(TrackopsError, LookupError):
    """An unknown tracking number, order or notification id."""


class InvalidInputError(TrackopsError, ValueError):
    """Input that cannot be used: the message names what was wrong and what was expected."""


class PermissionDeniedError(TrackopsError):
    """The actor may not do this (the Slack bot's admin-only commands)."""
