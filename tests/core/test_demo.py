"""`trackops demo`: sandbox, engine and listener end to end, with nothing configured."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from trackops.core.demo import run_demo


async def test_the_demo_moves_parcels_by_push_and_notifies(tmp_path: Path) -> None:
    out = io.StringIO()
    # Very fast simulated time: a parcel's whole history passes within a few seconds.
    changes = await run_demo(speed=200_000, shipments=6, seconds=8, out=out, workdir=tmp_path)
    text = out.getvalue()
    assert "registered 6 shipments" in text
    moved = {c.number for c in changes if c.kind == "shipment" and c.status and c.status.value}
    assert moved, text
    assert "[buyer buyer" in text  # the console channel's notification lines
    assert (tmp_path / "demo.db").exists()


def test_the_demo_command_runs_without_a_config(tmp_path: Path) -> None:
    trackops = Path(sys.executable).with_name("trackops")
    result = subprocess.run(
        [str(trackops), "demo", "--headless", "--seconds", "3", "--shipments", "3"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "registered 3 shipments" in result.stdout
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "trackops.toml").exists()
