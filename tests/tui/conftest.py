"""Fixtures of the dashboard's tests: a sandbox, a seeded store, a service, the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from trackops.core.channels import RecordingChannel
from trackops.core.config import Settings
from tui_harness import NOW, sandbox, sandbox_settings, seed_store


@pytest.fixture
async def box() -> AsyncIterator[Any]:
    """A sandbox with a frozen clock."""
    async with sandbox() as running:
        yield running


@pytest.fixture
async def seeded(tmp_path: Path, box: Any) -> Settings:
    """Settings over a seeded SQLite file in ``tmp_path``, API at the sandbox."""
    settings = sandbox_settings(tmp_path, box.base_url)
    await seed_store(settings)
    return settings


@pytest.fixture
async def service(seeded: Settings) -> AsyncIterator[Any]:
    """A service over the seeded store, on the fixed clock."""
    from trackops.core.runtime import open_service

    async with open_service(
        seeded, clock=lambda: NOW, channels=[RecordingChannel("memory")], load_plugins=False
    ) as opened:
        yield opened
