"""The layering contract (STYLE.md): core knows no front-end; plugins import no front-end."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_the_listener_reaches_nothing_behind_the_service() -> None:
    """The import contract sees imports only; ``service.engine.store`` would pass it. The
    listener (core/webhook.py) names neither an engine nor a store, by any attribute."""
    source = (ROOT / "core" / "webhook.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    reached = sorted(
        {
            f"line {node.lineno}: .{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr.lstrip("_") in {"engine", "store", "plugins"}
        }
    )
    assert reached == [], reached
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not names & {"Engine", "Store", "queries"}
