"""TrackClient: every 17TRACK API v1 endpoint over one aiohttp session.

The wire format (models, encoding, the error table, number and tag checks) lives in
``trackops.core.wire``; this module only moves those bytes and adds what a network needs:

* **Batches.** Endpoints that take a list are split into batches of at most ``wire.MAX_BATCH``
  (40) items, sent concurrently. Results come back per number: a ``BatchResult`` with what
  17TRACK accepted, what it rejected, and how many HTTP requests were spent. One bad number
  never costs the other 39 of its batch.
* **Local validation.** A malformed number (-18010012), an over-long tag (-18010015) or a
  carrier that is not an integer (-18010011) is rejected before sending, with the message
  17TRACK would give, and spends no request. Duplicates within one call are sent once.
* **Rate limit.** Every request (retries included) passes one ``RateLimiter`` shared by all
  clients of the same endpoint and key in the process: a sliding window, as 17TRACK counts.
  A request goes out only when the one ``rate_limit`` requests before it went out at least
  ``RATE_MARGIN`` seconds (1.05 s) ago, so no 1-second window, however it is placed, ever
  sees more than ``rate_limit`` requests, with 50 ms to spare for jitter between our clock
  and the server's. A window's requests go out close together (80 ms apart, so that the server
  takes them one at a time), then the next window's 1.05 s later: 1,200 numbers (30 requests)
  register in about 9.6 s rather than the 10.15 s that evenly spaced requests with the same
  margin take. (A token bucket such as
  ``aiolimiter.AsyncLimiter(rate_limit, 1.0)`` would not do: it lets ``rate_limit`` requests
  through at once and then one every ``1 / rate_limit`` s, i.e. up to ``2 * rate_limit - 1``
  requests in the first second.)
* **Retries.** HTTP 429, 500, 502, 503, 504, timeouts, connection errors and the envelope code
  -18010003 ("please retry later") are retried ``max_retries`` times with exponential backoff
  and jitter, within a bounded total time; then ``ApiUnavailable`` is raised.
* **Errors.** HTTP 401 raises ``ApiAuthError``; an envelope-level code other than 0 raises
  ``wire.TrackApiError``; anything else that keeps us from an answer raises ``ApiUnavailable``.
  The API key never appears in a message, a log line or a repr.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import random
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Generic, Self, TypeVar

import aiohttp
import msgspec
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)
from trackops.core import wire
from trackops.core.config import ApiSettings, Secret
from trackops.core.errors import TrackopsError
from trackops.core.wire import (
    MAX_BATCH,
    ApiErrorBody,
    CarrierResult,
    ChangeCarrierItem,
    ChangeInfoItems,
    ChangeInfoRequest,
    NumberItem,
    RegisterItem,
    RegisterResult,
    Rejected,
    TrackApiError,
    TrackInfoResult,
    TrackListEntry,
    TrackListQuery,
)
from yarl import URL

__all__ = [
    "RATE_MARGIN",
    "RETRYABLE_HTTP_STATUSES",
    "ApiAuthError",
    "ApiUnavailable",
    "BatchDone",
    "BatchResult",
    "Progress",
    "RateLimiter",
    "TrackClient",
    "TrackListPage",
    "rate_limiter",
    "shared_limiter",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
E = TypeVar("E", bound="wire.Envelope[Any] | wire.TrackListEnvelope")

Progress = Callable[[int, int], object]
"""``progress(done, total)``; may return an awaitable, which is awaited."""

RATE_MARGIN: Final = 1.05
"""The window the client keeps: ``rate_limit`` requests per 1.05 s, 5% slack for jitter."""

MIN_GAP: Final = 0.08
"""Seconds between two requests of one window, so the server takes them one at a time."""

RETRYABLE_HTTP_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: rate limited, or the service is briefly unwell."""

AUTH_MESSAGE: Final = (
    "17TRACK refused the API key (HTTP 401): wrong key, IP not whitelisted, or account disabled"
)

PATHS: Final = {
    "register": "/register",
    "change_carrier": "/changecarrier",
    "change_info": "/changeinfo",
    "stop_track": "/stoptrack",
    "retrack": "/Retrack",  # as the reference spells it
    "delete_track": "/deleteTrack",
    "push": "/push",
    "get_track_info": "/gettrackinfo",
    "get_track_list": "/gettracklist",
}
"""Endpoint paths below ``base_url``, spelled as in the reference."""


class ApiUnavailable(TrackopsError):
    """17TRACK could not be reached or kept failing: network down, timeouts, 5xx, 429 after
    every retry, or an answer that is not 17TRACK's. The message is one line naming the host
    and what happened; it never contains the API key."""


class ApiAuthError(TrackopsError):
    """HTTP 401: 17TRACK refused the key (wrong key, IP not whitelisted, account disabled)."""

    def __init__(self, message: str = AUTH_MESSAGE) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class TrackListPage:
    """One page of ``/gettracklist``: its rows and where it sits among all matching rows.

    ``page_total``/``data_total``/``page_size`` are 17TRACK's ``page`` object (``None`` when
    the answer had none). Iterating a page iterates its rows.
    """

    entries: list[TrackListEntry]
    page_no: int
    page_total: int | None = None
    data_total: int | None = None
    page_size: int | None = None

    @property
    def has_next(self) -> bool:
        """True when a later page exists (by ``page_total``; else when this page was full)."""
        if self.page_total is not None:
            return self.page_no < self.page_total
        return self.page_size is not None and len(self.entries) >= self.page_size

    def __iter__(self) -> Iterator[TrackListEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


@dataclass
class BatchResult(Generic[T]):
    """The outcome of one client call, per number.

    ``accepted``: 17TRACK's accepted items, in the order they were given. ``rejected``: every
    refused number with its error code and message, local validation failures included.
    ``requests``: HTTP requests spent (retries included).
    """

    accepted: list[T] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    requests: int = 0


BatchDone = Callable[[int, BatchResult[Any]], Awaitable[object]]
"""``on_batch(index, result)``: awaited once a batch is answered, with its index (batches are
``MAX_BATCH`` items each, in the order given) and 17TRACK's answer to it alone."""


# --------------------------------------------------------------------------- rate limiting


class RateLimiter:
    """At most ``max_rate`` grants in any window of ``time_period`` seconds (a sliding window).

    ``acquire()`` returns once the grant ``max_rate`` places before this one is at least
    ``time_period`` seconds old, and at least ``min_gap`` seconds after the one just before
    it (so that a window's requests reach the server one after the other rather than queued
    behind each other, which would delay their arrival and shrink the window the server sees).
    Waiters are served in arrival order. Times are the event loop's clock. ``max_rate`` and
    ``available`` tell how much is left in the current window.

    ``acquire()`` returns the grant's time; ``sent(granted)`` then moves that grant to the
    moment the request really left (a connection to open, a busy event loop), so that the
    requests after it keep their distance from when the server saw it.
    """

    def __init__(self, max_rate: int, time_period: float, min_gap: float = 0.0) -> None:
        if max_rate < 1 or time_period <= 0 or min_gap < 0:
            raise ValueError(f"a rate limit needs max_rate >= 1 and time_period > 0, got "
                             f"{max_rate!r} per {time_period!r} s")  # fmt: skip
        self.max_rate = max_rate
        self.time_period = time_period
        self.min_gap = min(min_gap, time_period / max_rate)
        self._grants: list[float] = []  # the last max_rate grants (not in order once moved)
        self._turn: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"RateLimiter(max_rate={self.max_rate!r}, time_period={self.time_period!r})"

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    @property
    def available(self) -> int:
        """Grants that could be made right now without waiting."""
        now = self._now()
        return self.max_rate - sum(1 for t in self._grants if now - t < self.time_period)

    @property
    def _level(self) -> float:
        """Grants inside the current window (the name ``aiolimiter`` gives its bucket level)."""
        return float(self.max_rate - self.available)

    async def acquire(self) -> float:
        """Wait for a place in the window, then take it; returns the grant's time."""
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            while self._grants:
                due = max(self._grants) + self.min_gap
                if len(self._grants) >= self.max_rate:
                    due = max(due, min(self._grants) + self.time_period)
                wait = due - self._now()
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if len(self._grants) >= self.max_rate:
                self._grants.remove(min(self._grants))
            granted = self._now()
            self._grants.append(granted)
            return granted

    def sent(self, granted: float, at: float | None = None) -> None:
        """The request granted at ``granted`` left at ``at`` (default: now): its place in the
        window counts from then. A grant already out of the window is left alone."""
        at = self._now() if at is None else at
        if at > granted and granted in self._grants:
            self._grants[self._grants.index(granted)] = at

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass(frozen=True)
class _Grant:
    """A request's place in its rate limiter, told when the request's headers left."""

    limiter: RateLimiter
    granted: float


async def _headers_sent(
    _session: aiohttp.ClientSession, context: Any, _params: aiohttp.TraceRequestHeadersSentParams
) -> None:
    grant = getattr(context, "trace_request_ctx", None)
    if isinstance(grant, _Grant):
        grant.limiter.sent(grant.granted)


def rate_limiter(rate_limit: float) -> RateLimiter:
    """A ``RateLimiter`` letting at most ``rate_limit`` requests into any 1-second window.

    ``rate_limit`` requests per ``RATE_MARGIN`` (1.05) seconds: 5% to spare for jitter between
    our clock and the server's. A rate below 1, or with a fraction, becomes whole requests per
    a longer window (0.5/s: 1 per 2.1 s; 2.5/s: 2 per 0.84 s).
    """
    if rate_limit <= 0:
        raise ValueError(f"rate_limit must be positive, got {rate_limit!r}")
    count = max(1, int(rate_limit))
    period = RATE_MARGIN * count / rate_limit
    return RateLimiter(max_rate=count, time_period=period, min_gap=MIN_GAP)


# One limiter per (endpoint, key, rate), remade when the event loop changes (its lock and
# clock belong to one loop). Holding the loop weakly keeps closed loops collectable.
_shared: dict[tuple[str, str, float], tuple[weakref.ref[asyncio.AbstractEventLoop], RateLimiter]]
_shared = {}


def shared_limiter(api: ApiSettings) -> RateLimiter:
    """The process-wide limiter for ``api``'s endpoint and key, on the running event loop.

    17TRACK counts requests per key, so every ``TrackClient`` with the same base URL and key
    shares one limiter and together they stay under ``api.rate_limit``.
    """
    loop = asyncio.get_running_loop()
    key_digest = hashlib.sha256(_reveal(api).encode()).hexdigest()[:16]
    ident = (api.base_url.rstrip("/"), key_digest, float(api.rate_limit))
    entry = _shared.get(ident)
    if entry is None or entry[0]() is not loop:
        entry = _shared[ident] = (weakref.ref(loop), rate_limiter(api.rate_limit))
    return entry[1]


# --------------------------------------------------------------------------- local validation


def _local_rejection(exc: TrackApiError, number: str | None, carrier: Any) -> Rejected:
    carrier_out = carrier if isinstance(carrier, int) and not isinstance(carrier, bool) else None
    return Rejected(
        error=ApiErrorBody(code=exc.code, message=exc.message),
        number=number if isinstance(number, str) else repr(number),
        carrier=carrier_out,
    )


def _check_carrier(value: Any, name: str, number: str) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise TrackApiError(-18010011, wire.error_message(-18010011, name), number=number)


def _check_register(item: RegisterItem) -> None:
    wire.validate_number(item.number)
    _check_carrier(item.carrier, "carrier", item.number)
    _check_carrier(item.final_carrier, "final_carrier", item.number)
    wire.validate_tag(item.tag, item.number)


def _check_number_item(item: NumberItem) -> None:
    wire.validate_number(item.number)
    _check_carrier(item.carrier, "carrier", item.number)


def _check_change_carrier(item: ChangeCarrierItem) -> None:
    wire.validate_number(item.number)
    for name in ("carrier_new", "carrier_old", "final_carrier_new", "final_carrier_old"):
        _check_carrier(getattr(item, name), name, item.number)
    if item.carrier_new is None and item.final_carrier_new is None:
        raise TrackApiError(-18019804, number=item.number)


def _as_register(item: RegisterItem | str) -> RegisterItem:
    return RegisterItem(number=item) if isinstance(item, str) else item


def _as_number(item: NumberItem | str) -> NumberItem:
    return NumberItem(number=item) if isinstance(item, str) else item


def _reveal(api: ApiSettings) -> str:
    key = api.key
    return key.reveal() if isinstance(key, Secret) else str(key or "")


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- the client


class _Retryable(Exception):
    """One failed attempt worth retrying; ``reason`` says what happened, for the final error."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class TrackClient:
    """An async client for every 17TRACK API v1 endpoint.

    Use as an async context manager; it owns one ``aiohttp.ClientSession`` unless ``session``
    is given (then the caller closes it). ``limiter`` replaces the process-wide limiter of
    ``shared_limiter``. ``backoff_initial``/``backoff_max`` shape the exponential backoff
    between retries (seconds, jittered); ``retry_budget`` bounds the total time spent
    retrying one request.

    >>> async with TrackClient(settings.api) as client:          # doctest: +SKIP
    ...     result = await client.register(["RR123456789CN"])
    """

    def __init__(
        self,
        api: ApiSettings,
        *,
        session: aiohttp.ClientSession | None = None,
        limiter: RateLimiter | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        retry_budget: float = 60.0,
    ) -> None:
        self._api = api
        self._base_url = api.base_url.rstrip("/")
        url = URL(self._base_url)
        self._host = f"{url.host}:{url.explicit_port}" if url.explicit_port else str(url.host)
        self._session = session
        self._owns_session = session is None
        self._limiter = limiter
        self._timeout = aiohttp.ClientTimeout(total=api.timeout)
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._retry_budget = retry_budget

    def __repr__(self) -> str:
        return (
            f"TrackClient(base_url={self._base_url!r}, rate_limit={self._api.rate_limit!r}, "
            f"max_retries={self._api.max_retries!r})"
        )

    @property
    def base_url(self) -> str:
        """The API base URL, without a trailing slash."""
        return self._base_url

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client opened it."""
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owns_session and self._session.closed):
            # The rate limiter hears when each request's headers really left (``_Grant``).
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(_headers_sent)
            self._session = aiohttp.ClientSession(timeout=self._timeout, trace_configs=[trace])
            self._owns_session = True
        return self._session

    @property
    def limiter(self) -> RateLimiter:
        """The rate limiter this client's requests pass through."""
        return self._get_limiter()

    def _get_limiter(self) -> RateLimiter:
        if self._limiter is None:
            return shared_limiter(self._api)
        return self._limiter

    # ------------------------------------------------------------------ endpoints

    async def register(
        self,
        items: Sequence[RegisterItem | str],
        progress: Progress | None = None,
        on_batch: BatchDone | None = None,
    ) -> BatchResult[RegisterResult]:
        """``/register``: start tracking numbers (a bare string is a number with no options).

        ``progress(done, total)`` is called after each batch, and ``on_batch(index, result)``
        awaited with that batch's answer (so a caller can keep each batch's numbers while the
        rate limit holds the next ones back).
        """
        prepared = [_as_register(i) for i in items]
        return await self._batched(
            "register", prepared, RegisterResult, _check_register, _key_carrier, progress, on_batch
        )

    async def change_carrier(
        self, items: Sequence[ChangeCarrierItem]
    ) -> BatchResult[CarrierResult]:
        """``/changecarrier``: change the first (``carrier_new``) or last-mile carrier."""
        return await self._batched(
            "change_carrier",
            list(items),
            CarrierResult,
            _check_change_carrier,
            _key_change_carrier,
            None,
        )

    async def change_info(
        self,
        number: str,
        *,
        carrier: int | None = None,
        tag: str | None = None,
        param: str | None = None,
    ) -> BatchResult[CarrierResult]:
        """``/changeinfo``: change a number's tag (17TRACK ignores every other item today)."""
        try:
            wire.validate_number(number)
            _check_carrier(carrier, "carrier", number)
            wire.validate_tag(tag, number)
        except TrackApiError as exc:
            return BatchResult(rejected=[_local_rejection(exc, number, carrier)])
        body = ChangeInfoRequest(
            number=number, carrier=carrier, items=ChangeInfoItems(tag=tag, param=param)
        )
        data, requests = await self._request(PATHS["change_info"], body, CarrierResult)
        return BatchResult(list(data.accepted), list(data.rejected), requests)

    async def stop_track(self, items: Sequence[NumberItem | str]) -> BatchResult[CarrierResult]:
        """``/stoptrack``: stop tracking numbers (they can be retracked once)."""
        return await self._numbers("stop_track", items, CarrierResult)

    async def retrack(self, items: Sequence[NumberItem | str]) -> BatchResult[CarrierResult]:
        """``/Retrack``: track stopped numbers again (each number once)."""
        return await self._numbers("retrack", items, CarrierResult)

    async def delete_track(self, items: Sequence[NumberItem | str]) -> BatchResult[CarrierResult]:
        """``/deleteTrack``: delete registered numbers."""
        return await self._numbers("delete_track", items, CarrierResult)

    async def push(self, items: Sequence[NumberItem | str]) -> BatchResult[CarrierResult]:
        """``/push``: ask 17TRACK to push the numbers' tracking information to the webhook."""
        return await self._numbers("push", items, CarrierResult)

    async def get_track_info(
        self, items: Sequence[NumberItem | str], progress: Progress | None = None
    ) -> BatchResult[TrackInfoResult]:
        """``/gettrackinfo``: the latest tracking information of each number.

        ``progress(done, total)`` is called after each batch.
        """
        return await self._numbers("get_track_info", items, TrackInfoResult, progress)

    async def get_track_list(
        self, query: TrackListQuery | None = None, *, page_no: int | None = None
    ) -> TrackListPage:
        """``/gettracklist``: one page of registered numbers matching ``query``'s filters.

        ``page_no`` overrides ``query.page_no``. The result keeps 17TRACK's ``page`` object
        (``page_total``, ``data_total``), so a caller can ask for the next page while
        ``has_next``. Raises ``TrackApiError`` when 17TRACK reports an error in the filters.
        """
        query = query if query is not None else TrackListQuery()
        if page_no is not None:
            query = msgspec.structs.replace(query, page_no=page_no)
        if query.number is not None:
            wire.validate_number(query.number)
        envelope, _ = await self._send(
            PATHS["get_track_list"], wire.encode(query), wire.decode_track_list
        )
        error = envelope.api_error()
        if error is not None:
            raise error
        data = envelope.data or wire.TrackListData()
        page = data.page or wire.TrackListPage()
        return TrackListPage(
            entries=list(data.accepted),
            page_no=page.page_no or query.page_no or 1,
            page_total=page.page_total,
            data_total=page.data_total,
            page_size=page.page_size,
        )

    # ------------------------------------------------------------------ batching

    async def _numbers(
        self,
        endpoint: str,
        items: Sequence[NumberItem | str],
        result_type: type[R],
        progress: Progress | None = None,
    ) -> BatchResult[R]:
        prepared = [_as_number(i) for i in items]
        return await self._batched(
            endpoint, prepared, result_type, _check_number_item, _key_carrier, progress
        )

    async def _batched(
        self,
        endpoint: str,
        items: list[Any],
        result_type: type[R],
        check: Callable[[Any], None],
        key: Callable[[Any], tuple[Any, ...]],
        progress: Progress | None,
        on_batch: BatchDone | None = None,
    ) -> BatchResult[R]:
        """Validate, de-duplicate, send in concurrent batches of 40, merge per number."""
        to_send: list[Any] = []
        local: list[Rejected] = []
        seen: set[tuple[Any, ...]] = set()
        for item in items:
            try:
                check(item)
            except TrackApiError as exc:
                local.append(_local_rejection(exc, exc.number, getattr(item, "carrier", None)))
                continue
            ident = key(item)
            if ident in seen:
                continue  # the same number (and carrier) twice: send it once
            seen.add(ident)
            to_send.append(item)

        batches = [to_send[i : i + MAX_BATCH] for i in range(0, len(to_send), MAX_BATCH)]
        total = len(to_send) + len(local)
        done = len(local)
        answers: list[tuple[list[R], list[Rejected], int] | None] = [None] * len(batches)
        path = PATHS[endpoint]

        async def send(index: int, batch: list[Any]) -> None:
            nonlocal done
            data, requests = await self._request(path, batch, result_type)
            answers[index] = (list(data.accepted), list(data.rejected), requests)
            if on_batch is not None:
                answer = BatchResult(list(data.accepted), list(data.rejected), requests)
                await on_batch(index, answer)
            done += len(batch)
            if progress is not None:
                await _call_progress(progress, done, total)

        if not batches:
            if progress is not None and total:
                await _call_progress(progress, done, total)
        else:
            try:
                async with asyncio.TaskGroup() as group:
                    for index, batch in enumerate(batches):
                        group.create_task(send(index, batch))
            except BaseExceptionGroup as failures:
                raise _most_telling(failures) from None

        result: BatchResult[R] = BatchResult()
        for answer in answers:
            assert answer is not None
            accepted, rejected, requests = answer
            result.accepted.extend(accepted)
            result.rejected.extend(rejected)
            result.requests += requests
        result.rejected.extend(local)
        return result

    # ------------------------------------------------------------------ one request

    async def _request(
        self, path: str, body: Any, result_type: type[R]
    ) -> tuple[wire.BatchData[R], int]:
        """POST ``body`` to ``path`` with retries; the answer's data and the requests spent."""

        def decode(raw: bytes) -> wire.Envelope[R]:
            return wire.decode_envelope(raw, result_type)

        envelope, attempts = await self._send(path, wire.encode(body), decode)
        error = envelope.api_error()
        if error is not None:
            raise error
        data = envelope.data if envelope.data is not None else wire.BatchData()
        return data, attempts

    async def _send(self, path: str, payload: bytes, decode: Callable[[bytes], E]) -> tuple[E, int]:
        """POST ``payload`` to ``path`` with retries; the decoded answer and requests spent."""
        url = self._base_url + path
        attempts = 0

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(max(0, self._api.max_retries) + 1)
            | stop_before_delay(self._retry_budget),
            wait=self._wait,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    envelope = await self._attempt(url, path, payload, decode)
        except _Retryable as exc:
            plural = "attempt" if attempts == 1 else "attempts"
            raise ApiUnavailable(
                self._scrub(
                    f"17TRACK API at {self._host} unavailable after {attempts} {plural} "
                    f"({path}): {exc.reason}"
                )
            ) from None
        return envelope, attempts

    async def _attempt(
        self, url: str, path: str, payload: bytes, decode: Callable[[bytes], E]
    ) -> E:
        session = self._ensure_session()
        limiter = self._get_limiter()
        granted = await limiter.acquire()
        grant = _Grant(limiter, granted) if isinstance(granted, float) else None
        headers = {"17token": _reveal(self._api), "Content-Type": "application/json"}
        try:
            async with session.post(
                url, data=payload, headers=headers, timeout=self._timeout, trace_request_ctx=grant
            ) as response:
                status = response.status
                body = await response.read()
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            raise _Retryable(f"no answer within {self._api.timeout:g} s") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise _Retryable(self._describe(exc)) from None
        except aiohttp.ClientError as exc:
            raise ApiUnavailable(
                self._scrub(f"17TRACK API at {self._host} ({path}): {self._describe(exc)}")
            ) from None

        logger.debug("POST %s -> HTTP %s (%d bytes)", path, status, len(body))
        if status == 401:
            raise ApiAuthError()
        if status in RETRYABLE_HTTP_STATUSES:
            what = "rate limited" if status == 429 else "server error"
            raise _Retryable(f"HTTP {status} ({what})", retry_after)
        if status != 200:
            hint = " (check [api] base_url)" if status == 404 else ""
            raise ApiUnavailable(
                self._scrub(f"17TRACK API at {self._host} answered HTTP {status} for {path}{hint}")
            )
        try:
            envelope = decode(body)
        except wire.WireError as exc:
            raise ApiUnavailable(
                self._scrub(
                    f"17TRACK API at {self._host} sent an unreadable answer for {path}: {exc}"
                )
            ) from None
        error = envelope.api_error()
        if error is not None and error.code in wire.RETRYABLE_CODES:
            raise _Retryable(f"code {error.code} ({error.message})")
        return envelope

    # ------------------------------------------------------------------ retry helpers

    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter; a longer ``Retry-After`` is honoured up to the cap."""
        exponent = min(state.attempt_number - 1, 30)
        backoff = min(self._backoff_initial * 2**exponent, self._backoff_max)
        backoff = min(backoff + random.uniform(0, self._backoff_initial), self._backoff_max)
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(max(backoff, exc.retry_after), self._backoff_max)
        return backoff

    def _log_retry(self, state: RetryCallState) -> None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "17TRACK API at %s: %s; retrying in %.1f s (attempt %d of %d)",
            self._host,
            self._scrub(str(exc)),
            delay,
            state.attempt_number + 1,
            max(0, self._api.max_retries) + 1,
        )

    def _describe(self, exc: BaseException) -> str:
        text = _one_line(str(exc)) or type(exc).__name__
        if isinstance(exc, aiohttp.ClientConnectorError):
            return f"cannot connect ({text})"
        return f"{type(exc).__name__}: {text}"

    def _scrub(self, text: str) -> str:
        """Belt and braces: the key never leaves in a message, whatever a library put there."""
        secret = _reveal(self._api)
        text = _one_line(text)
        return text.replace(secret, "********") if len(secret) >= 4 else text


# --------------------------------------------------------------------------- helpers


def _key_carrier(item: RegisterItem | NumberItem) -> tuple[Any, ...]:
    return (item.number, item.carrier)


def _key_change_carrier(item: ChangeCarrierItem) -> tuple[Any, ...]:
    return (item.number, item.carrier_old, item.final_carrier_old)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare enough to fall back to our own backoff


async def _call_progress(progress: Progress, done: int, total: int) -> None:
    outcome = progress(done, total)
    if inspect.isawaitable(outcome):
        await outcome


def _most_telling(failures: BaseExceptionGroup[Any]) -> BaseException:
    """The one exception to raise for concurrent batches that failed."""
    leaves: list[BaseException] = []

    def walk(group: BaseExceptionGroup[Any]) -> None:
        for exc in group.exceptions:
            if isinstance(exc, BaseExceptionGroup):
                walk(exc)
            else:
                leaves.append(exc)

    walk(failures)
    for kind in (ApiAuthError, TrackApiError, ApiUnavailable):
        for exc in leaves:
            if isinstance(exc, kind):
                return exc
    return leaves[0]
