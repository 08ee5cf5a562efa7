"""mypy sees every package under the name it is imported by (pyproject's [tool.mypy])."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_path_maps_every_package_to_its_folder() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_dirs = config["tool"]["setuptools"]["package-dir"]
    mypy = config["tool"]["mypy"]
    base = ROOT / mypy["mypy_path"]
    for package in config["tool"]["setuptools"]["packages"]:
        link = base.joinpath(*package.split("."))
        assert link.is_symlink(), f"{link} should be a symlink to {package_dirs[package]}/"
        assert link.resolve() == (ROOT / package_dirs[package]).resolve(), package
    assert set(mypy["packages"]) <= set(config["tool"]["setuptools"]["packages"])
    assert {"trackops.core", "trackops.plugins"} <= set(mypy["packages"])
