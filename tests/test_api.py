"""Pins the engine's public API and the import boundaries that keep `batuta --help` fast."""

from __future__ import annotations

import subprocess
import sys

import engine


def test_public_api_is_pinned() -> None:
    assert engine.__all__ == sorted(engine.__all__)
    assert {"Engine", "EngineConfig", "RepoRef", "load_config", "BatutaError", "Event"} <= set(engine.__all__)
    for name in engine.__all__:
        assert hasattr(engine, name), name


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_engine_never_loads_the_ui_libraries() -> None:
    loaded = _modules_after("import engine")
    assert "rich" not in loaded and "typer" not in loaded


def test_cli_root_loads_no_network_stack() -> None:
    # `batuta --help` must stay fast: the typer tree is built without aiohttp or the engine.
    loaded = _modules_after("import cli.app")
    assert "aiohttp" not in loaded and "engine._hub" not in loaded
