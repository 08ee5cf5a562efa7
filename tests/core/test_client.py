"""TrackClient against the sandbox, over real HTTP on loopback.

Every endpoint, the batching and rate limit, the retries, and every error path. Retry backoff
is shrunk to milliseconds so the suite stays fast; the rate-limit tests take a few seconds
because 3 requests per second is the point.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from trackops.core import wire
from trackops.core.client import (
    ApiAuthError,
    ApiUnavailable,
    RateLimiter,
    TrackClient,
    rate_limiter,
    shared_limiter,
)
from trackops.core.config import ApiSettings, Secret
from trackops.core.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from trackops.core.wire import (
    ChangeCarrierItem,
    NumberItem,
    RegisterItem,
    TrackApiError,
    TrackListQuery,
)

KEY = "SANDBOX-KEY-0123456789ABCDEF"
WRONG_KEY = "WRONG-KEY-FEDCBA9876543210"


def numbers(count: int, prefix: str = "RR") -> list[str]:
    """``count`` distinct, well-formed UPU-like numbers."""
    return [f"{prefix}{i:09d}CN" for i in range(count)]


def api_for(sandbox: RunningSandbox, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "key": Secret(KEY),
        "base_url": sandbox.base_url,
        "rate_limit": 3.0,
        "timeout": 5.0,
        "max_retries": 3,
    }
    values.update(overrides)
    return ApiSettings(**values)


def fast(api: ApiSettings, **kwargs: Any) -> TrackClient:
    """A client whose retries wait milliseconds, not seconds."""
    return TrackClient(api, backoff_initial=0.01, backoff_max=0.05, **kwargs)


def api_requests(sandbox: RunningSandbox) -> list[tuple[float, str, int]]:
    return list(sandbox.state.requests)


def paths(sandbox: RunningSandbox) -> list[str]:
    return [path.rsplit("/", 1)[-1] for _, path, _ in sandbox.state.requests]


def statuses(sandbox: RunningSandbox) -> list[int]:
    return [status for _, _, status in sandbox.state.requests]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(SandboxConfig(key=KEY)) as running:
        yield running


@pytest.fixture
def api(sandbox: RunningSandbox) -> ApiSettings:
    return api_for(sandbox)


@pytest.fixture
async def client(api: ApiSettings) -> AsyncIterator[TrackClient]:
    async with fast(api) as opened:
        yield opened


def assert_key_hidden(*texts: object) -> None:
    for text in texts:
        assert KEY not in str(text)
        assert WRONG_KEY not in str(text)


# --------------------------------------------------------------------------- endpoints


async def test_register_accepts_numbers(client: TrackClient, sandbox: RunningSandbox) -> None:
    result = await client.register(
        [
            RegisterItem(number="RR123456789CN", carrier=3011, tag="order-1"),
            "LW503511611CN",
        ]
    )
    assert sorted(r.number for r in result.accepted) == ["LW503511611CN", "RR123456789CN"]
    assert result.rejected == []
    assert result.requests == 1
    assert paths(sandbox) == ["register"]
    assert statuses(sandbox) == [200]
    by_number = {r.number: r for r in result.accepted}
    assert by_number["RR123456789CN"].carrier == 3011


async def test_every_endpoint(client: TrackClient, sandbox: RunningSandbox) -> None:
    number = "RR123456789CN"
    registered = await client.register([RegisterItem(number=number, carrier=3011)])
    assert [r.number for r in registered.accepted] == [number]

    not_yet = await client.get_track_info([number])
    assert [r.error.code for r in not_yet.rejected] == [-18019909]  # no information yet
    sandbox.state.advance(2 * 86400)
    info = await client.get_track_info([NumberItem(number=number, carrier=3011)])
    assert info.requests == 1
    (tracked,) = info.accepted
    assert tracked.number == number
    assert tracked.track is not None
    assert tracked.track.first_carrier == 3011
    assert tracked.track.latest_event is not None

    changed = await client.change_info(number, carrier=3011, tag="order-42")
    assert [r.number for r in changed.accepted] == [number]
    assert changed.requests == 1

    listed = await client.get_track_list(TrackListQuery(number=number))
    assert [e.number for e in listed] == [number]
    assert listed.entries[0].tag == "order-42"
    missing = await client.get_track_list(TrackListQuery(number="ZZ999999999CN"), page_no=1)
    assert missing.entries == [] and missing.data_total == 0

    pushed = await client.push([NumberItem(number=number, carrier=3011)])
    assert [r.number for r in pushed.accepted] == [number]

    moved = await client.change_carrier(
        [ChangeCarrierItem(number=number, carrier_old=3011, carrier_new=3013)]
    )
    assert [(r.number, r.carrier) for r in moved.accepted] == [(number, 3013)]
    carrier = 3013

    stopped = await client.stop_track([NumberItem(number=number)])
    assert [r.number for r in stopped.accepted] == [number]
    again = await client.stop_track([number])
    assert [r.error.code for r in again.rejected] == [-18019906]

    retracked = await client.retrack([number])
    assert [r.number for r in retracked.accepted] == [number]

    deleted = await client.delete_track([NumberItem(number=number, carrier=carrier)])
    assert [r.number for r in deleted.accepted] == [number]
    gone = await client.get_track_info([number])
    assert [r.error.code for r in gone.rejected] == [-18019902]

    assert paths(sandbox) == [
        "register",
        "gettrackinfo",
        "gettrackinfo",
        "changeinfo",
        "gettracklist",
        "gettracklist",
        "push",
        "changecarrier",
        "stoptrack",
        "stoptrack",
        "Retrack",  # spelled as in the reference
        "deleteTrack",
        "gettrackinfo",
    ]
    assert set(statuses(sandbox)) == {200}


async def test_get_track_list_pages(client: TrackClient) -> None:
    await client.register(numbers(5))
    first = await client.get_track_list(TrackListQuery(page_no=1))
    assert {e.number for e in first} >= set(numbers(5))
    assert first.page_no == 1 and first.data_total == len(first.entries)
    assert not first.has_next
    beyond = await client.get_track_list(page_no=1000)
    assert beyond.entries == [] and beyond.page_no == 1000


async def test_get_track_list_keeps_the_page_object_so_callers_can_page(
    client: TrackClient,
) -> None:
    """Failed before: the answer's ``page`` was dropped, so nobody could tell a next page."""
    await client.register(numbers(45))
    first = await client.get_track_list(TrackListQuery(page_no=1))
    assert (first.page_no, first.page_total, first.data_total) == (1, 2, 45)
    assert first.has_next and len(first) == 40
    second = await client.get_track_list(page_no=2)
    assert not second.has_next
    assert {e.number for e in [*first, *second]} == set(numbers(45))


# --------------------------------------------------------------------------- local validation


async def test_invalid_items_are_rejected_locally_and_the_rest_sent(
    client: TrackClient, sandbox: RunningSandbox
) -> None:
    long_tag = "t" * 101
    result = await client.register(
        [
            "1234",
            RegisterItem(number="RR123456789CN", tag=long_tag),
            RegisterItem(number="LW503511611CN", carrier="3011"),  # type: ignore[arg-type]
            "RR 12345678CN",
            "RV929123748CN",
        ]
    )
    assert [r.number for r in result.accepted] == ["RV929123748CN"]
    rejected = {r.number: r.error for r in result.rejected}
    assert rejected["1234"] == wire.ApiErrorBody(-18010012, "The format of '1234' is invalid.")
    assert rejected["RR 12345678CN"].code == -18010012
    assert rejected["RR123456789CN"] == wire.ApiErrorBody(
        -18010015, f"The value '{long_tag}' of field tag is invalid."
    )
    assert rejected["LW503511611CN"] == wire.ApiErrorBody(
        -18010011, "The value of carrier is invalid."
    )
    assert result.requests == 1
    assert len(api_requests(sandbox)) == 1


async def test_nothing_valid_spends_no_request(
    client: TrackClient, sandbox: RunningSandbox
) -> None:
    seen: list[tuple[int, int]] = []
    result = await client.register(["1234", "x"], progress=lambda d, t: seen.append((d, t)))
    assert result.accepted == []
    assert [r.error.code for r in result.rejected] == [-18010012, -18010012]
    assert result.requests == 0
    assert seen == [(2, 2)]
    info = await client.get_track_info(["bad!"])
    assert [r.error.code for r in info.rejected] == [-18010012]
    tagged = await client.change_info("RR123456789CN", tag="t" * 101)
    assert [r.error.code for r in tagged.rejected] == [-18010015]
    moved = await client.change_carrier([ChangeCarrierItem(number="RR123456789CN")])
    assert [r.error.code for r in moved.rejected] == [-18019804]
    assert api_requests(sandbox) == []


async def test_duplicates_in_one_call_are_sent_once(
    client: TrackClient, sandbox: RunningSandbox
) -> None:
    result = await client.register(["RR123456789CN", "RR123456789CN", "LW503511611CN"])
    assert sorted(r.number for r in result.accepted) == ["LW503511611CN", "RR123456789CN"]
    assert result.rejected == []
    assert result.requests == 1


async def test_partly_rejected_batch_keeps_the_rest(client: TrackClient) -> None:
    batch = numbers(40)
    first = await client.register(batch[:1])
    assert len(first.accepted) == 1
    result = await client.register(batch)
    assert result.requests == 1
    assert sorted(r.number for r in result.accepted) == batch[1:]
    (rejected,) = result.rejected
    assert rejected.number == batch[0]
    assert rejected.error.code == -18019901
    assert rejected.error.message == wire.error_message(-18019901, batch[0])


# --------------------------------------------------------------------------- batching


async def test_95_numbers_take_3_requests(client: TrackClient, sandbox: RunningSandbox) -> None:
    seen: list[tuple[int, int]] = []
    result = await client.register(numbers(95), progress=lambda d, t: seen.append((d, t)))
    assert result.requests == 3
    assert sorted(r.number for r in result.accepted) == numbers(95)
    assert paths(sandbox) == ["register"] * 3
    assert len(seen) == 3
    assert seen[-1] == (95, 95)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    progress_calls: list[tuple[int, int]] = []

    async def async_progress(done: int, total: int) -> None:
        progress_calls.append((done, total))

    info = await client.get_track_info(numbers(95), progress=async_progress)
    assert info.requests == 3
    assert progress_calls[-1] == (95, 95)
    assert len(progress_calls) == 3
    answered = {r.number for r in info.accepted} | {r.number for r in info.rejected}
    assert answered == set(numbers(95))


# --------------------------------------------------------------------------- rate limit


def max_in_any_second(times: list[float]) -> int:
    """Most requests any closed 1-second window holds."""
    times = sorted(times)
    best = 0
    for i, start in enumerate(times):
        best = max(best, sum(1 for t in times[i:] if t - start <= 1.0))
    return best


async def test_rate_limit_holds_for_30_concurrent_calls(
    api: ApiSettings, sandbox: RunningSandbox
) -> None:
    # three clients in one process share one limiter, as the engine, the bot and the CLI would
    async with fast(api) as a, fast(api) as b, TrackClient(api) as c:
        clients = [a, b, c]
        started = time.monotonic()
        results = await asyncio.gather(
            *(clients[i % 3].register([f"RR{i:09d}CN"]) for i in range(30))
        )
        elapsed = time.monotonic() - started
    assert all(len(r.accepted) == 1 for r in results)
    assert sum(r.requests for r in results) == 30
    assert 429 not in statuses(sandbox)
    times = [t for t, _, _ in sandbox.state.requests]
    assert len(times) == 30
    assert max_in_any_second(times) <= 3
    assert elapsed < 12  # 9 windows of 1.05 s


async def test_the_limiter_keeps_any_window_under_the_rate_and_waits_no_longer() -> None:
    """The sliding window: ``rate`` grants per 1.05 s, 80 ms apart inside a window. A token
    bucket (aiolimiter's ``AsyncLimiter(3, 1.0)``) would let 5 through in the first second;
    evenly spaced grants (one per 0.35 s) would take 0.58 s longer for 30."""
    loop = asyncio.get_running_loop()
    limiter = rate_limiter(3)
    started = loop.time()
    times: list[float] = []

    async def take() -> None:
        await limiter.acquire()
        times.append(loop.time() - started)

    await asyncio.gather(*(take() for _ in range(12)))
    assert max_in_any_second(times) == 3
    assert all(b - a >= 1.05 - 1e-3 for a, b in zip(times, times[3:], strict=False))
    assert all(b - a >= 0.08 - 1e-3 for a, b in itertools.pairwise(times))
    assert times[-1] < 3 * 1.05 + 2 * 0.08 + 0.1  # 4 windows: 3.31 s, not 11 * 0.35 = 3.85 s
    assert limiter.available == 0
    assert max_in_any_second([t for t in await grants(rate_limiter(10), 13)]) <= 10


async def test_a_request_that_left_late_keeps_the_next_window_away_from_it() -> None:
    """A grant moved to when its request really left (``sent``): no window of 1.05 s holds
    more than 3 requests as they left, and the request 3 places after the late one waits a
    whole window from when it left, not from its grant."""
    loop = asyncio.get_running_loop()
    limiter = rate_limiter(3)
    first = await limiter.acquire()
    left = [first + 0.4]  # its connection took 0.4 s to open
    left += [await limiter.acquire(), await limiter.acquire()]
    limiter.sent(first, at=left[0])
    limiter.sent(first + 99, at=first + 99.5)  # not a grant of this window: ignored
    left += [await limiter.acquire() for _ in range(3)]
    assert all(b - a >= 1.05 - 1e-3 for a, b in zip(sorted(left), sorted(left)[3:], strict=False))
    assert left[-1] - left[0] >= 1.05 - 1e-3  # from when it left, not from its grant
    assert loop.time() - first < 0.4 + 1.05 + 0.3


async def test_the_client_tells_its_limiter_when_each_request_left(
    api: ApiSettings, sandbox: RunningSandbox
) -> None:
    class Recording(RateLimiter):
        def __init__(self) -> None:
            super().__init__(1000, 1.0)
            self.moves: list[tuple[float, float]] = []

        def sent(self, granted: float, at: float | None = None) -> None:
            now = asyncio.get_running_loop().time()
            self.moves.append((granted, now if at is None else at))
            super().sent(granted, at)

    limiter = Recording()
    async with fast(api, limiter=limiter) as client:
        await client.register(numbers(81))
    assert len(limiter.moves) == 3
    assert all(granted <= left for granted, left in limiter.moves)


async def grants(limiter: RateLimiter, count: int) -> list[float]:
    loop = asyncio.get_running_loop()
    out = []
    for _ in range(count):
        await limiter.acquire()
        out.append(loop.time())
    return out


@pytest.mark.parametrize(("rate", "count", "period"), [(3, 3, 1.05), (0.5, 1, 2.1), (2.5, 2, 0.84)])
def test_fractional_rates_become_whole_requests_per_window(
    rate: float, count: int, period: float
) -> None:
    limiter = rate_limiter(rate)
    assert (limiter.max_rate, round(limiter.time_period, 6)) == (count, period)


def test_rate_limiter_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        rate_limiter(0)


async def test_shared_limiter_is_per_endpoint_and_key(api: ApiSettings) -> None:
    same = ApiSettings(key=Secret(KEY), base_url=api.base_url + "/", rate_limit=3.0)
    other_key = ApiSettings(key=Secret("ANOTHER-KEY-123"), base_url=api.base_url, rate_limit=3.0)
    assert shared_limiter(api) is shared_limiter(same)
    assert shared_limiter(api) is not shared_limiter(other_key)
    assert KEY not in repr(shared_limiter(api))


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_transient_http_errors_are_retried(
    client: TrackClient, sandbox: RunningSandbox, status: int
) -> None:
    sandbox.state.fail_next(status, count=2)
    result = await client.register(["RR123456789CN"])
    assert [r.number for r in result.accepted] == ["RR123456789CN"]
    assert result.requests == 3
    assert statuses(sandbox) == [status, status, 200]


async def test_retry_later_code_is_retried(client: TrackClient, sandbox: RunningSandbox) -> None:
    sandbox.state.fail_next(200, count=1, code=-18010003)
    result = await client.get_track_info(["RR123456789CN"])
    assert result.requests == 2
    assert len(api_requests(sandbox)) == 2


async def test_retries_are_bounded(
    sandbox: RunningSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.state.fail_next(503, count=10)
    caplog.set_level(logging.DEBUG, logger="trackops.core.client")
    async with fast(api_for(sandbox, max_retries=2)) as client:
        with pytest.raises(ApiUnavailable) as caught:
            await client.register(["RR123456789CN"])
    message = str(caught.value)
    assert message.startswith(f"17TRACK API at 127.0.0.1:{sandbox.port} unavailable after 3")
    assert "HTTP 503" in message
    assert "\n" not in message
    assert statuses(sandbox) == [503, 503, 503]
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 2
    assert_key_hidden(message, caplog.text)


async def test_retry_later_code_exhausted(sandbox: RunningSandbox) -> None:
    sandbox.state.fail_next(200, count=5, code=-18010003)
    async with fast(api_for(sandbox, max_retries=1)) as client:
        with pytest.raises(ApiUnavailable, match="-18010003"):
            await client.stop_track(["RR123456789CN"])
    assert len(api_requests(sandbox)) == 2


async def test_retry_budget_bounds_total_time(sandbox: RunningSandbox) -> None:
    sandbox.state.fail_next(503, count=50)
    api = api_for(sandbox, max_retries=50)
    async with TrackClient(api, backoff_initial=0.2, backoff_max=0.2, retry_budget=0.5) as client:
        started = time.monotonic()
        with pytest.raises(ApiUnavailable):
            await client.register(["RR123456789CN"])
    assert time.monotonic() - started < 2.0
    assert len(api_requests(sandbox)) <= 4


# --------------------------------------------------------------------------- errors


async def test_wrong_key_is_an_auth_error_without_the_key(sandbox: RunningSandbox) -> None:
    api = api_for(sandbox, key=Secret(WRONG_KEY))
    async with fast(api) as client:
        with pytest.raises(ApiAuthError) as caught:
            await client.register(["RR123456789CN"])
        assert_key_hidden(repr(client))
    assert str(caught.value) == (
        "17TRACK refused the API key (HTTP 401): wrong key, IP not whitelisted, or account disabled"
    )
    assert_key_hidden(str(caught.value), repr(caught.value))
    assert statuses(sandbox) == [401]  # never retried


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (-18010002, "Access token is invalid."),
        (-18010014, "Request parameter number exceeds 40."),
    ],
)
async def test_envelope_error_raises_track_api_error(
    client: TrackClient, sandbox: RunningSandbox, code: int, message: str
) -> None:
    sandbox.state.fail_next(200, count=1, code=code)
    with pytest.raises(TrackApiError) as caught:
        await client.register(["RR123456789CN"])
    assert caught.value.code == code
    assert caught.value.message == message
    assert len(api_requests(sandbox)) == 1  # not retried
    assert_key_hidden(str(caught.value))


async def test_the_real_code_under_another_top_level_code_is_reported(
    client: TrackClient, sandbox: RunningSandbox
) -> None:
    """Failed before: reported as "Unknown error code 401"."""
    sandbox.state.fail_next(200, count=1, code=-18010002, top_code=401)
    with pytest.raises(TrackApiError) as caught:
        await client.register(["RR123456789CN"])
    assert (caught.value.code, caught.value.message) == (-18010002, "Access token is invalid.")
    assert len(api_requests(sandbox)) == 1


async def test_retry_later_under_another_top_level_code_is_retried(
    client: TrackClient, sandbox: RunningSandbox
) -> None:
    sandbox.state.fail_next(200, count=1, code=-18010003, top_code=500)
    result = await client.get_track_info(["RR123456789CN"])
    assert result.requests == 2


async def test_one_failing_batch_fails_the_call_once(
    client: TrackClient, sandbox: RunningSandbox
) -> None:
    sandbox.state.fail_next(200, count=1, code=-18010002)
    with pytest.raises(TrackApiError) as caught:
        await client.register(numbers(95))
    assert caught.value.code == -18010002


async def test_network_down_is_unavailable_quickly() -> None:
    port = closed_port()
    api = ApiSettings(
        key=Secret(KEY),
        base_url=f"http://127.0.0.1:{port}/track/v1",
        rate_limit=100.0,
        timeout=2.0,
        max_retries=1,
    )
    started = time.monotonic()
    async with fast(api) as client:
        with pytest.raises(ApiUnavailable) as caught:
            await client.register(["RR123456789CN"])
    assert time.monotonic() - started < 2.0
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "unavailable after 2 attempts" in message
    assert "cannot connect" in message
    assert "\n" not in message
    assert_key_hidden(message, repr(caught.value))


async def test_no_answer_times_out() -> None:
    """A server that accepts and never answers: the timeout applies and is reported."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    api = ApiSettings(
        key=Secret(KEY),
        base_url=f"http://127.0.0.1:{port}/track/v1",
        rate_limit=100.0,
        timeout=0.2,
        max_retries=1,
    )
    try:
        async with fast(api) as client:
            with pytest.raises(ApiUnavailable, match=r"no answer within 0.2 s") as caught:
                await client.get_track_info(["RR123456789CN"])
        assert_key_hidden(str(caught.value), repr(caught.value))
    finally:
        server.close()
        await server.wait_closed()


async def test_wrong_base_url_is_not_retried(sandbox: RunningSandbox) -> None:
    api = api_for(sandbox, base_url=sandbox.base_url.replace("/track/v1", "/track/v9"))
    async with fast(api) as client:
        with pytest.raises(ApiUnavailable, match=r"HTTP 404 .*base_url") as caught:
            await client.register(["RR123456789CN"])
    assert_key_hidden(str(caught.value))
    assert statuses(sandbox) in ([404], [])  # the sandbox may not log unknown paths


# --------------------------------------------------------------------------- session and secrets


async def test_repr_hides_the_key(api: ApiSettings) -> None:
    client = TrackClient(api)
    text = repr(client)
    assert api.base_url in text
    assert_key_hidden(text, repr(api))


async def test_session_passed_in_is_used_and_left_open(
    api: ApiSettings, sandbox: RunningSandbox
) -> None:
    async with aiohttp.ClientSession() as session:
        async with TrackClient(api, session=session) as client:
            result = await client.register(["RR123456789CN"])
        assert len(result.accepted) == 1
        assert not session.closed


async def test_client_opens_and_closes_its_own_session(api: ApiSettings) -> None:
    client = TrackClient(api)
    async with client:
        session = client._session
        assert session is not None and not session.closed
    assert session.closed


async def test_custom_limiter_is_used(api: ApiSettings, sandbox: RunningSandbox) -> None:
    class CountingLimiter(RateLimiter):
        acquired = 0

        async def acquire(self) -> None:
            type(self).acquired += 1
            await super().acquire()

    limiter = CountingLimiter(1, 0.35)
    async with fast(api, limiter=limiter) as client:
        await client.register(numbers(41))
    assert CountingLimiter.acquired == 2


def test_shared_limiter_follows_the_event_loop() -> None:
    api = ApiSettings(key=Secret(KEY), base_url="http://127.0.0.1:9/track/v1")

    async def get() -> object:
        return shared_limiter(api)

    first = asyncio.run(get())
    second = asyncio.run(get())
    assert first is not second  # a limiter bound to a closed loop is not reused
