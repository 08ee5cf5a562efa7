"""Register many numbers through TrackClient against the in-process sandbox; print figures.

    .venv/bin/python benchmarks/register_bulk.py [--numbers 1200] [--rate 3]

Figures: wall time; the bound ``ceil(N / 40) / rate`` seconds and our ratio to it (target
<= 1.10); numbers accepted and lost (must be 0 lost); HTTP 429s the sandbox answered and
429s that reached the caller (both must be 0); the most requests any 1-second window saw.

The bound counts one request per 1/rate s. A limiter letting ``rate`` requests go at once and
then ``rate`` more every second could finish in ``(requests - rate) / rate`` s; TrackClient
spaces requests evenly with 5% slack instead, so it lands just above the bound.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time

from trackops.core.client import ApiUnavailable, TrackClient
from trackops.core.config import ApiSettings, Secret
from trackops.core.sandbox import SandboxConfig, running_sandbox
from trackops.core.wire import MAX_BATCH, RegisterItem

KEY = "BENCHMARK-KEY-0000000000000000"


def max_in_any_second(times: list[float]) -> int:
    """Most requests any closed 1-second window holds."""
    times = sorted(times)
    return max(
        (sum(1 for t in times[i:] if t - start <= 1.0) for i, start in enumerate(times)),
        default=0,
    )


async def run(count: int, rate: float) -> int:
    numbers = [f"RB{i:09d}CN" for i in range(count)]
    async with running_sandbox(SandboxConfig(key=KEY, rate_limit=rate)) as sandbox:
        api = ApiSettings(key=Secret(KEY), base_url=sandbox.base_url, rate_limit=rate)
        caller_429s = 0
        async with TrackClient(api) as client:
            started = time.monotonic()
            try:
                result = await client.register([RegisterItem(number=n) for n in numbers])
            except ApiUnavailable as exc:
                caller_429s += "429" in str(exc)
                raise
            wall = time.monotonic() - started

        requests = sandbox.state.requests
        sandbox_429s = sum(1 for _, _, status in requests if status == 429)
        accepted = {r.number for r in result.accepted}
        rejected = {r.number for r in result.rejected}
        lost = len(set(numbers) - accepted - rejected)

    batches = math.ceil(count / MAX_BATCH)
    bound = batches / rate
    burst_ideal = max(batches - rate, 0) / rate
    ratio = wall / bound
    print(f"numbers                     {count}")
    print(f"rate limit                  {rate:g} req/s")
    print(f"requests sent               {result.requests} (batches: {batches})")
    print(f"wall time                   {wall:.2f} s")
    print(f"bound ceil(N/40)/rate       {bound:.2f} s")
    print(f"ratio wall/bound            {ratio:.3f} (target <= 1.10)")
    print(f"burst-first ideal           {burst_ideal:.2f} s ((requests - rate) / rate)")
    print(f"accepted                    {len(accepted)}")
    print(f"rejected                    {len(rejected)}")
    print(f"lost                        {lost}")
    print(f"429 answered by sandbox     {sandbox_429s}")
    print(f"429 seen by caller          {caller_429s}")
    print(f"max requests in any 1 s     {max_in_any_second([t for t, _, _ in requests])}")
    ok = lost == 0 and sandbox_429s == 0 and caller_429s == 0 and ratio <= 1.10
    print("result                      " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=1200)
    parser.add_argument("--rate", type=float, default=3.0)
    args = parser.parse_args()
    return asyncio.run(run(args.numbers, args.rate))


if __name__ == "__main__":
    raise SystemExit(main())
