"""A bounded fuzz run over the listener, on SQLite and PostgreSQL.

Random bytes and structured, realistic-looking pushes with hostile values (huge and negative
numbers, floats, NUL and escape sequences, deep nesting, wrong types, odd times), signed and
unsigned, with odd Content-Encoding headers. Asserted: no 5xx answer except 503 (a store
fault), processing never stops, and a clean push sent afterwards is applied.

Seeded (``TRACKOPS_FUZZ_SEED``, default 12) and bounded (``TRACKOPS_FUZZ_SECONDS``, default 6 s
per store, at most 600 requests), so a failure can be replayed exactly.
"""

from __future__ import annotations

import json
import os
import random
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from factories import KEY, StoreTarget, make_info, push_body
from test_poison import listening, track
from trackops.core.wire import PackageStatus, push_signature

SEED = int(os.environ.get("TRACKOPS_FUZZ_SEED", "12"))
SECONDS = float(os.environ.get("TRACKOPS_FUZZ_SECONDS", "6"))
MAX_REQUESTS = 600

ODD_VALUES: list[Any] = [
    None, "", {}, [], 0, -1, 2**31, 2**63, -(2**63) - 1, 2**64 + 1, 10**40, 1.5, -0.0, 1e308,
    True, "10", "\u0000", "\x1b[2J\x1b]0;pwned\x07", "[/bold]", "\u202etxt", "é" * 300,
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2079-01-01 00:00:00",
    "not a time", [[[[]]]], {"a": {"b": None}},
]  # fmt: skip
TRACK_KEYS = ["e", "w1", "w2", "b", "c", "hs", "z0", "z1", "z2", "ylt1", "is1", "f", "yt", "zex"]
EVENT_KEYS = ["a", "b", "c", "d", "z"]


def _nested(depth: int) -> str:
    """A marker that ``_dumps`` turns into ``depth`` nested lists (json.dumps cannot)."""
    return f"@@NESTED{depth}@@"


def _dumps(value: Any) -> bytes:
    text = json.dumps(value)
    for depth in (50, 900, 3000, 5000):
        text = text.replace(f'"{_nested(depth)}"', "[" * depth + "]" * depth)
    return text.encode()


def _mutated_track(rng: random.Random) -> Any:
    value: dict[str, Any] = track(rng.choice([0, 10, 20, 30, 35, 40, 50, 60, -5]))
    for _ in range(rng.randint(1, 4)):
        key = rng.choice(TRACK_KEYS)
        if key in ("z0",) and rng.random() < 0.6:
            z0 = value.get("z0")
            event = dict(z0) if isinstance(z0, dict) else {}
            event[rng.choice(EVENT_KEYS)] = rng.choice(ODD_VALUES)
            value["z0"] = event
        elif rng.random() < 0.05:
            value[key] = _nested(rng.choice([50, 900, 3000]))
        else:
            value[key] = rng.choice(ODD_VALUES)
    if rng.random() < 0.05:
        return rng.choice(ODD_VALUES)
    return value


def _number(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.7:
        return f"RR{rng.randrange(10**9):09d}CN"
    if roll < 0.85:
        return rng.choice(["[/]", "\x1b[31mX", "RR\u0000", "", " ", "a" * 120, "\u202e12345"])
    return rng.choice(ODD_VALUES)


def _body(rng: random.Random) -> tuple[bytes, dict[str, str], str]:
    """One request body, its headers and a label for the counts."""
    headers: dict[str, str] = {}
    roll = rng.random()
    if roll < 0.15:
        body = rng.randbytes(rng.randint(0, 2000))
        kind = "random bytes"
    elif roll < 0.25:
        body = _dumps(rng.choice(ODD_VALUES))
        kind = "json, not an envelope"
    else:
        event = rng.choice(["TRACKING_UPDATED"] * 6 + ["TRACKING_STOPPED", "OTHER", ""])
        data_value: Any = {"number": _number(rng), "track": _mutated_track(rng)}
        if rng.random() < 0.1:
            data_value["tag"] = rng.choice(ODD_VALUES)
        if rng.random() < 0.03:
            data_value = _nested(5000)
        data = _dumps(data_value)
        signed = rng.random() < 0.7
        sign = (
            push_signature(event, data, KEY)
            if signed
            else rng.choice(["0" * 64, "é" * 64, "", "zz"])
        )
        body = b'{"sign":%s,"event":%s,"data":%s}' % (
            json.dumps(sign).encode(),
            json.dumps(event).encode(),
            data,
        )
        kind = "signed push" if signed else "unsigned push"
        if rng.random() < 0.1:
            body = body[: rng.randint(0, len(body))]
            kind += ", truncated"
    encoding = rng.random()
    if encoding < 0.05:
        headers["Content-Encoding"] = rng.choice(["gzip", "deflate", "br", "x-bogus"])
    elif encoding < 0.08:
        body = zlib.compress(body)
        headers["Content-Encoding"] = "deflate"
    return body, headers, kind


async def test_fuzz_the_listener(target: StoreTarget, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    statuses: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    async with listening(target, tmp_path, max_body_bytes=256 * 1024) as lst:
        deadline = time.monotonic() + SECONDS
        sent = 0
        while time.monotonic() < deadline and sent < MAX_REQUESTS:
            body, headers, kind = _body(rng)
            try:
                status = await lst.post(body, headers=headers)
            except Exception as exc:
                raise AssertionError(f"{exc!r} for {kind} {headers}: {body[:300]!r}") from exc
            statuses[status] += 1
            kinds[kind] += 1
            sent += 1
            assert status < 500 or status == 503, f"{status} for {kind}: {body[:200]!r}"
            if sent % 50 == 0:
                await lst.settle()  # processing never raises: bad rows are quarantined
        await lst.settle()
        for delay in lst.engine.inbox_retry_delays:  # rows in backoff: retried, then quarantined
            lst.clock.advance(delay)
            await lst.settle()
        assert statuses[503] == 0, "no store fault was injected: 503 would be a bug here"
        # A clean push afterwards is applied.
        clean = "RR999999999CN"
        assert await lst.post(push_body(clean, make_info(40))) == 200
        await lst.settle()
        record = await lst.engine.store.get_shipment(clean)
        assert record is not None and record.status is PackageStatus.DELIVERED
        stats = await lst.engine.store.inbox_stats()
        assert stats.backlog == 0
        # Quarantined rows are pushes that cannot be read (not a bug in applying them).
        reasons = Counter(
            (row.error or "").split(":")[0] for row in await lst.engine.store.inbox_failed()
        )
        applied_failures = {r: n for r, n in reasons.items() if "could not be read" not in r}
        assert all("push for" in r for r in applied_failures), (
            f"rows failed while being applied: {applied_failures}"
        )
    print(
        f"\nfuzz ({target.backend}, seed {SEED}): {sent} requests "
        f"{dict(sorted(statuses.items()))}; {dict(kinds)}; {stats.failed} quarantined"
    )
