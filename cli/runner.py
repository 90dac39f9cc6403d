"""The bridge from a sync typer command to one async engine call."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

import anyio
import click
import typer

from cli.errors import ExitCode, exit_code_for, message_for
from engine._errors import BatutaError

if TYPE_CHECKING:
    from engine import Engine, EngineConfig, EventSink

T = TypeVar("T")


def fail(message: str, code: ExitCode, **details: object) -> NoReturn:
    """The one-line error on stderr, and under --json an error document (with `details`) on stdout; then exit."""
    from cli.render import error_document

    error_document(message, int(code), **details)
    click.echo(f"error: {message}", err=True)
    sys.exit(int(code))


def verbose(ctx: click.Context | typer.Context) -> bool:
    """The global -v: say every retry, not only the waits."""
    return bool(getattr(ctx.find_root().obj, "verbose", False))


def load(ctx: click.Context | typer.Context | None = None, **overrides: object) -> EngineConfig:
    """EngineConfig from the environment and the global --endpoint / --token options."""
    from engine import load_config

    opts = ctx.find_root().obj if ctx is not None else None
    try:
        return load_config(
            os.environ,
            endpoint=getattr(opts, "endpoint", None),
            token=getattr(opts, "token", None),
            **overrides,
        )
    except BatutaError as exc:
        fail(message_for(exc), exit_code_for(exc))


def run_engine(
    config: EngineConfig,
    call: Callable[[Engine], Awaitable[T]],
    on_event: EventSink | None = None,
) -> T:
    """Open an Engine, await `call(engine)`, close it; errors become one line and an exit code."""
    from engine import Engine, discard

    async def main() -> T:
        async with Engine(config, on_event=on_event or discard) as engine:
            return await call(engine)

    try:
        return anyio.run(main)
    except BatutaError as exc:
        fail(message_for(exc), exit_code_for(exc))
    except KeyboardInterrupt:
        fail("interrupted", ExitCode.INTERRUPTED)
    except OSError as exc:
        # Local disk trouble (permissions, space) is not a Hub problem: say what and where.
        fail(f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc), ExitCode.FAILURE)


def guard(fn: Callable[[], T]) -> T:
    """Run pure engine code (no event loop) with the same error contract."""
    try:
        return fn()
    except BatutaError as exc:
        fail(message_for(exc), exit_code_for(exc))
