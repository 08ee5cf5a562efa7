"""A tour of every 17TRACK v1 endpoint through ``TrackClient``, against ``trackops sandbox``.

    trackops sandbox --port 8080 --key dev --speed 3600      # in one shell
    python examples/client_tour.py --port 8080 --key dev      # in another

Each step prints what 17TRACK (here: the sandbox) answered, number by number.
"""

from __future__ import annotations

import argparse
import asyncio

from trackops.core.client import BatchResult, TrackClient
from trackops.core.config import ApiSettings, Secret
from trackops.core.wire import ChangeCarrierItem, NumberItem, RegisterItem, TrackListQuery


def show(step: str, result: BatchResult) -> None:  # type: ignore[type-arg]
    print(f"\n{step}  ({result.requests} request(s))")
    for item in result.accepted:
        track = getattr(item, "track", None)
        if track is not None:
            event = track.latest_event
            latest = f"{event.time_raw} {event.place} {event.description}" if event else "no event"
            print(f"  accepted {item.number}: {track.package_status.display}; {latest}")
        else:
            print(f"  accepted {item}")
    for rej in result.rejected:
        print(f"  rejected {rej.number}: {rej.error.message} (code {rej.error.code})")


async def tour(port: int, key: str) -> None:
    api = ApiSettings(key=Secret(key), base_url=f"http://127.0.0.1:{port}/track/v1")
    numbers = ["RR123456789CN", "LX987654321US", "1234"]
    async with TrackClient(api) as client:
        show("register", await client.register([RegisterItem(number=n) for n in numbers]))
        show("register again", await client.register([RegisterItem(number=numbers[0])]))
        show("gettrackinfo", await client.get_track_info([NumberItem(number=n) for n in numbers]))
        show("changeinfo (tag)", await client.change_info(numbers[0], tag="order-1001"))
        show(
            "changecarrier",
            await client.change_carrier([ChangeCarrierItem(number=numbers[1], carrier_new=100003)]),
        )
        show("push", await client.push([NumberItem(number=numbers[0])]))
        show("stoptrack", await client.stop_track([NumberItem(number=numbers[0])]))
        show("retrack", await client.retrack([NumberItem(number=numbers[0])]))
        show("retrack again", await client.retrack([NumberItem(number=numbers[0])]))
        page = await client.get_track_list(TrackListQuery(page_no=1))
        print(f"\ngettracklist  page {page.page_no} of {page.page_total}, {page.data_total} row(s)")
        for row in page:
            print(f"  {row.number} carrier {row.first_carrier} status {row.package_status}")
        show(
            "deleteTrack",
            await client.delete_track([NumberItem(number=numbers[1], carrier=100003)]),
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--key", default="dev")
    ns = parser.parse_args()
    asyncio.run(tour(ns.port, ns.key))
