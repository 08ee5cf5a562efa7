"""Shared fixtures. Each engineer appends the fixtures their tests share below."""

from __future__ import annotations

import os

import pytest

POSTGRES_URL_ENV = "TRACKOPS_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    """The PostgreSQL URL for store tests, or None (those tests then skip, saying why)."""
    return os.environ.get(POSTGRES_URL_ENV) or None


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Tests never read the developer's own config or carrier data."""
    monkeypatch.delenv("TRACKOPS_CONFIG", raising=False)
    monkeypatch.setenv("TRACKOPS_DATA_DIR", str(tmp_path_factory.mktemp("trackops-data")))
